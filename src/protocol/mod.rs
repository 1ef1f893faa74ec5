//! The SCP protocol engine, both ends, pure of terminals and sockets.
//!
//! [`Source`] walks local paths and sends records and data; [`Sink`] parses
//! records, checks every name and size, and writes files. Both run over any
//! `AsyncRead + AsyncWrite` pair, report through [`Events`], and are used by
//! the client and by server mode (`rscp -t`, `rscp -f`).

mod blocking;
mod limit;
pub mod names;
pub mod record;
mod relay;
mod sink;
mod source;
mod wire;

use std::fmt;

pub use limit::bytes_per_second;
pub use names::NameFilter;
pub use relay::{Relay, RelayOptions};
pub use sink::{Sink, SinkOptions, require_directory};
pub use source::{Source, SourceOptions};
pub use wire::DataWrite;

/// Size of the buffers file data moves in.
pub const CHUNK: usize = 256 * 1024;

/// Longest control line accepted, newline included (OpenSSH's limit).
pub const MAX_LINE: usize = 2048;

/// Prefix of the error messages rscp sends to its peer (scp sends "scp: ").
pub const PEER_PREFIX: &str = "rscp: ";

/// Why a protocol session ended early. Per-file problems are not session
/// errors: they are reported through [`Events::error`] and counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionError {
    /// The stream ended or failed where more was due.
    LostConnection,
    /// The peer broke the protocol; the text says how.
    Protocol(String),
    /// The peer sent a fatal error (already shown through the events) or
    /// text that is not part of the protocol.
    PeerFailed,
    /// A local condition that ends the session, such as `-d` with a target
    /// that is not a directory. Already shown through the events.
    Refused,
}

impl SessionError {
    /// The text to show the user, or `None` when it was already shown.
    pub fn message(&self) -> Option<String> {
        match self {
            SessionError::LostConnection => Some("lost connection".into()),
            SessionError::Protocol(why) => Some(format!("protocol error: {why}")),
            SessionError::PeerFailed | SessionError::Refused => None,
        }
    }
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.message() {
            Some(text) => f.write_str(&text),
            None => f.write_str("session failed"),
        }
    }
}

impl std::error::Error for SessionError {}

/// What a finished session did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Problems reported along the way (by us or by the peer).
    pub errors: u32,
}

/// How the engine tells the outside world what happens. Client mode prints
/// errors and draws progress; server mode keeps quiet (its peer is told).
pub trait Events: Sync {
    /// One of our own problems, worded "what: why"; shown as `rscp: ...`.
    fn error(&self, message: &str);
    /// A message the peer sent (`\x01`/`\x02` lines, or stray text), raw.
    fn peer_message(&self, message: &[u8]);
    /// Whether [`Events::debug`] lines are wanted (`-v`).
    fn verbose(&self) -> bool {
        false
    }
    /// A `-v` line, raw; shown with control characters escaped.
    fn debug(&self, _line: &[u8]) {}
    /// A file's data starts to move.
    fn file_started(&self, _name: &[u8], _size: u64) {}
    /// More of the current file has moved.
    fn file_progress(&self, _bytes: u64) {}
    /// The current file is done (or abandoned).
    fn file_finished(&self) {}
    /// Whether progress is shown (so that totals are worth counting).
    fn shows_progress(&self) -> bool {
        false
    }
    /// Files and bytes the run will move, when known beforehand.
    fn expect(&self, _files: u64, _bytes: u64) {}
}

/// Events that go nowhere, for tests and quiet internal uses.
pub struct NoEvents;

impl Events for NoEvents {
    fn error(&self, _message: &str) {}
    fn peer_message(&self, _message: &[u8]) {}
}
