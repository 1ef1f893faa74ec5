//! The SCP protocol engine, both ends, pure of terminals and sockets.
//!
//! [`Source`] walks local paths and sends records and data; [`Sink`] parses
//! records, checks every name and size, and writes files. Both run over any
//! `AsyncRead + AsyncWrite` pair, report through [`Events`], and are used by
//! the client and by server mode (`rscp -t`, `rscp -f`).

pub mod names;
pub mod record;
mod relay;
mod sink;
mod source;
mod wire;

pub use names::NameFilter;
pub(crate) use relay::relay_into;
pub use relay::{Relay, RelayOptions};
pub use sink::{Sink, SinkOptions};
pub use source::{Source, SourceOptions};

pub use crate::local::CHUNK;

/// Longest control line accepted, newline included (OpenSSH's limit).
pub const MAX_LINE: usize = 2048;

/// Prefix of the error messages rscp sends to its peer (scp sends "scp: ").
pub const PEER_PREFIX: &str = "rscp: ";
