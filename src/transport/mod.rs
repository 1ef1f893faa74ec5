//! Byte pipes to a remote `scp -t` / `scp -f`.
//!
//! Today there is one way to reach a remote host: run an ssh-compatible
//! program (`-S`, or `ssh` from PATH). Server mode talks over the process's
//! own stdin and stdout and needs no transport.

pub mod children;
mod program;

use std::ffi::OsStr;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};

pub use program::ProgramTransport;

use crate::operand::Remote;
use crate::protocol::Events;

/// A remote command running at the other end of a transport.
pub struct Channel {
    pub reader: Pin<Box<dyn AsyncRead + Send>>,
    pub writer: Pin<Box<dyn AsyncWrite + Send>>,
    pub completion: Completion,
}

/// What is left of a channel once its streams are handed to the engine:
/// the means to learn how the remote command ended.
pub enum Completion {
    Program(program::RunningProgram),
}

impl Completion {
    /// Waits for the remote side to finish. `Ok` when it succeeded; the
    /// error says how it failed (its own messages went to stderr already).
    pub async fn wait(self) -> Result<(), String> {
        match self {
            Completion::Program(running) => running.wait().await,
        }
    }

    /// Ends a remote side after a broken session: nothing more is wanted
    /// from it, and a misbehaving peer must not keep rscp waiting.
    pub async fn terminate(self) {
        match self {
            Completion::Program(running) => running.terminate().await,
        }
    }
}

pub enum Transport {
    Program(ProgramTransport),
}

impl Transport {
    /// Starts `command` on the remote host. The error is a message for
    /// the user.
    pub async fn exec(
        &self,
        remote: &Remote,
        command: &OsStr,
        events: &dyn Events,
    ) -> Result<Channel, String> {
        match self {
            Transport::Program(program) => program.exec(remote, command, events),
        }
    }
}
