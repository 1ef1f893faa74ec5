//! What every transfer engine (SCP, SFTP) has in common: the writer it
//! sends through, and how a session ends.

use std::fmt;
use std::pin::Pin;

use bytes::Bytes;
use tokio::io::AsyncWrite;

pub use crate::local::receive::Times;

/// Why a session ended early. Per-file problems are not session errors:
/// they are reported through [`crate::events::Events::error`] and counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionError {
    /// The stream ended or failed where more was due.
    LostConnection,
    /// The peer neither read nor answered for this long (a helper
    /// channel, cut by us).
    NoAnswer(std::time::Duration),
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
            SessionError::NoAnswer(limit) => Some(format!("no answer for {} s", limit.as_secs())),
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

/// Where a source's file data goes. A writer that can take a buffer as it
/// is (an SSH channel, which would otherwise copy every write) says so and
/// saves the engine a copy of every byte.
pub trait DataWrite: AsyncWrite + Unpin {
    /// Whether `send_owned` takes buffers.
    fn takes_owned(&self) -> bool {
        false
    }

    /// Starts sending `data`, or gives it back. Called only with nothing
    /// in flight (after a flush); the next flush waits for it to go.
    fn send_owned(self: Pin<&mut Self>, data: Bytes) -> Result<(), Bytes> {
        Err(data)
    }
}

impl<T: DataWrite + ?Sized> DataWrite for Pin<Box<T>> {
    fn takes_owned(&self) -> bool {
        (**self).takes_owned()
    }

    fn send_owned(self: Pin<&mut Self>, data: Bytes) -> Result<(), Bytes> {
        self.get_mut().as_mut().send_owned(data)
    }
}

// Writers that copy anyway: pipes and stdout.
impl DataWrite for tokio::process::ChildStdin {}
impl DataWrite for tokio::io::Stdout {}
impl DataWrite for tokio::io::Sink {}
impl<T: AsyncWrite> DataWrite for tokio::io::WriteHalf<T> {}

/// Why a destination refused an entry (already shown to the user), or
/// `None` when it took it.
pub type Refusal = Option<String>;

/// The far end of `-3` as its origin sees it, whichever protocol either
/// end speaks: a tree handed over as directories entered and left, and
/// files in between. The origin has checked every name before it comes
/// here; progress and `-l` are the origin's. (Used by rscp's own engines
/// only, so the futures' Send-ness needs no bound.)
#[allow(async_fn_in_trait)]
pub trait Destination {
    /// A directory `name` inside the current one (at the top: as the
    /// target says). Refused: its contents are not sent.
    async fn enter_directory(
        &mut self,
        name: &[u8],
        mode: u32,
        times: Option<Times>,
    ) -> Result<Refusal, SessionError>;

    /// The end of the directory entered last (its times and mode set).
    async fn leave_directory(&mut self) -> Result<Refusal, SessionError>;

    /// A file `name` of `size` bytes (as the origin last saw it).
    /// Refused: no data follows.
    async fn begin_file(
        &mut self,
        name: &[u8],
        mode: u32,
        size: u64,
        times: Option<Times>,
    ) -> Result<Refusal, SessionError>;

    /// Whether a file's size must be known before its data (a remote
    /// `scp -t` is told it first).
    fn needs_size(&self) -> bool {
        false
    }

    /// How many more bytes the current file takes: `Some(0)` once it
    /// takes no more (its size is reached, or writing it failed); `None`
    /// for any amount.
    fn room(&self) -> Option<u64>;

    /// The next bytes of the current file.
    async fn file_data(&mut self, data: &[u8]) -> Result<(), SessionError>;

    /// The end of the current file: `failure` is why the origin could not
    /// read it all (already shown).
    async fn end_file(&mut self, failure: Option<&str>) -> Result<Refusal, SessionError>;
}
