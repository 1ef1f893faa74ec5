//! Byte pipes to a remote `scp -t` / `scp -f` or a remote SFTP server.
//!
//! Ways to reach one: rscp's own SSH client (the default), an
//! ssh-compatible program given with `-S`, or (`-D`) an SFTP server run
//! here with no ssh at all. Server mode talks over the process's own stdin
//! and stdout and needs no transport.

pub mod children;
mod program;
pub mod ssh;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::pin::Pin;

use tokio::io::AsyncRead;

pub use program::{DirectTransport, ProgramTransport};

use crate::engine::DataWrite;
use crate::events::Events;
use crate::operand::Remote;

/// What to start at the far end.
#[derive(Debug, Clone, Copy)]
pub enum Start<'a> {
    /// A command for the remote shell (`scp -t ...`).
    Command(&'a OsStr),
    /// A subsystem by name (`sftp`).
    Subsystem(&'a str),
}

impl Start<'_> {
    /// As `-v` shows it.
    pub fn shown(&self) -> String {
        match self {
            Start::Command(command) => crate::escape::for_terminal(command.as_bytes()),
            Start::Subsystem(name) => {
                format!("subsystem {}", crate::escape::for_terminal(name.as_bytes()))
            }
        }
    }
}

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
    /// A remote side that has ended already, with this exit status.
    Ended(Option<u32>),
}

impl Completion {
    /// Waits for the remote side to finish. `Ok` when it succeeded; else
    /// what to tell the user, `None` when the remote side (or the ssh
    /// program) has said why already (an exit status of its own).
    pub async fn wait(self) -> Result<(), Option<String>> {
        match self {
            Completion::Program(running) => running.wait().await,
            Completion::Native(channel) => channel.wait().await,
            Completion::Ended(Some(0)) => Ok(()),
            Completion::Ended(Some(_)) => Err(None),
            Completion::Ended(None) => {
                Err(Some("remote command ended without an exit status".into()))
            }
        }
    }

    /// Holds the remote side's stderr back until its first output (for
    /// the built-in client; a `-S` program's stderr is the user's).
    pub fn hold_stderr(&self) {
        if let Completion::Native(channel) = self {
            channel.hold_stderr();
        }
    }

    /// Holds the remote side's stderr back until its first output, and
    /// then drops it (see `ssh::channel`); a `-S` program's is the user's.
    pub fn drop_startup_stderr(&self) {
        if let Completion::Native(channel) = self {
            channel.drop_startup_stderr();
        }
    }

    /// For a remote side that sent no output: waits for its end; its exit
    /// status and the stderr held back.
    pub async fn ended_silently(self) -> (Option<u32>, Vec<u8>) {
        match self {
            Completion::Program(running) => (running.exit_code().await, Vec::new()),
            Completion::Native(channel) => channel.ended_silently().await,
            Completion::Ended(status) => (status, Vec::new()),
        }
    }

    /// Ends a remote side after a broken session: nothing more is wanted
    /// from it, and a misbehaving peer must not keep rscp waiting.
    pub async fn terminate(self) {
        match self {
            Completion::Program(running) => running.terminate().await,
            Completion::Native(channel) => channel.terminate().await,
            Completion::Ended(_) => {}
        }
    }
}

pub enum Transport {
    Program(ProgramTransport),
    Native(Box<ssh::NativeTransport>),
    /// `-D program`: an SFTP server run here, spoken to over pipes.
    Direct(DirectTransport),
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
        self.open(remote, Start::Command(command), events, ssh::Lane::Shared)
            .await
    }

    /// Starts a command or subsystem on the remote host, over the given
    /// connection of the destination (each `-S` program is a connection of
    /// its own).
    pub async fn open(
        &self,
        remote: &Remote,
        start: Start<'_>,
        events: &dyn Events,
        lane: ssh::Lane,
    ) -> Result<Channel, String> {
        match self {
            Transport::Program(program) => program.open(remote, start, events),
            Transport::Native(native) => native.open(remote, start, events, lane).await,
            Transport::Direct(direct) => direct.open(remote, start, events),
        }
    }

    /// The round trip to `remote` over the built-in client's connection,
    /// once made (`None` for other transports).
    pub async fn round_trip(&self, remote: &Remote) -> Option<std::time::Duration> {
        match self {
            Transport::Native(native) => native.round_trip(remote).await,
            _ => None,
        }
    }

    /// Ends the run's connections.
    pub async fn close(&self) {
        if let Transport::Native(native) = self {
            native.close().await;
        }
    }
}
