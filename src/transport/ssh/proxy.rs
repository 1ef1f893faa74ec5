//! Carriers for an SSH session other than a TCP socket: a ProxyCommand's
//! stdin and stdout, or a direct-tcpip channel through a jump host.

use std::io;
use std::pin::Pin;
use std::process::Stdio;
use std::task::{Context, Poll};

use russh::ChannelStream;
use russh::client::{Handle, Msg};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::connection::Client;
use crate::transport::children;

/// `ProxyCommand`, run as ssh runs it (`exec` through `/bin/sh -c`); its
/// stderr is the user's. It runs in a process group of its own, which is
/// terminated when the connection is dropped.
pub struct ProxyCommand {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
}

impl ProxyCommand {
    pub fn spawn(command: &str) -> Result<ProxyCommand, String> {
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("exec {command}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("proxy command {command}: {}", crate::escape::io_reason(&e)))?;
        if let Some(pid) = child.id() {
            children::register_group(pid);
        }
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("cannot talk to the proxy command".into());
        };
        Ok(ProxyCommand {
            child,
            stdin,
            stdout,
        })
    }
}

impl Drop for ProxyCommand {
    fn drop(&mut self) {
        // The whole group: a script's own children would otherwise keep
        // the connection (and whatever else they hold) open.
        if let Some(pid) = self.child.id() {
            children::signal_group(pid, nix::sys::signal::Signal::SIGTERM);
            children::forget(pid);
        }
    }
}

impl AsyncRead for ProxyCommand {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stdout).poll_read(cx, buf)
    }
}

impl AsyncWrite for ProxyCommand {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stdin).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stdin).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stdin).poll_shutdown(cx)
    }
}

/// A direct-tcpip channel to the next hop, with the connection it runs
/// over kept alive as long as it is.
pub struct JumpStream {
    stream: ChannelStream<Msg>,
    _jump: Handle<Client>,
}

impl JumpStream {
    pub fn new(stream: ChannelStream<Msg>, jump: Handle<Client>) -> JumpStream {
        JumpStream {
            stream,
            _jump: jump,
        }
    }
}

impl AsyncRead for JumpStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for JumpStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
