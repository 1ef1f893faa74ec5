//! Byte pipes to a remote `scp -t` / `scp -f`.
//!
//! Two ways to reach a remote host: rscp's own SSH client (the default), or
//! an ssh-compatible program given with `-S`. Server mode talks over the
//! process's own stdin and stdout and needs no transport.

pub mod children;
mod program;
pub mod ssh;

use std::ffi::OsStr;
use std::pin::Pin;

use tokio::io::AsyncRead;

pub use program::ProgramTransport;

use crate::engine::DataWrite;
use crate::events::Events;
use crate::operand::Remote;

/// A remote command running at the other end of a transport.
pub struct Channel {
    pub reader: Pin<Box<dyn AsyncRead + Send>>,
    pub writer: Pin<Box<dyn DataWrite + Send>>,
    pub completion: Completion,
}

/// What is left of a channel once its streams are handed to the engine:
/// the means to learn how the remote command ended.
pub enum Completion {
    Program(program::RunningProgram),
    Native(ssh::channel::ChannelCompletion),
}

impl Completion {
    /// Waits for the remote side to finish. `Ok` when it succeeded; else
    /// what to tell the user, `None` when the remote side (or the ssh
    /// program) has said why already (an exit status of its own).
    pub async fn wait(self) -> Result<(), Option<String>> {
        match self {
            Completion::Program(running) => running.wait().await,
            Completion::Native(channel) => channel.wait().await,
        }
    }

    /// Ends a remote side after a broken session: nothing more is wanted
    /// from it, and a misbehaving peer must not keep rscp waiting.
    pub async fn terminate(self) {
        match self {
            Completion::Program(running) => running.terminate().await,
            Completion::Native(channel) => channel.terminate().await,
        }
    }
}

pub enum Transport {
    Program(ProgramTransport),
    Native(Box<ssh::NativeTransport>),
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
        self.exec_on(remote, command, events, ssh::Lane::Shared)
            .await
    }

    /// Like [`Transport::exec`], over the given connection of the
    /// destination (each `-S` program is a connection of its own).
    pub async fn exec_on(
        &self,
        remote: &Remote,
        command: &OsStr,
        events: &dyn Events,
        lane: ssh::Lane,
    ) -> Result<Channel, String> {
        match self {
            Transport::Program(program) => program.exec(remote, command, events),
            Transport::Native(native) => native.exec(remote, command, events, lane).await,
        }
    }

    /// Ends the run's connections.
    pub async fn close(&self) {
        if let Transport::Native(native) = self {
            native.close().await;
        }
    }
}
