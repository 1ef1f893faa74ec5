//! An exec channel as a byte pipe for the engine.
//!
//! Writes become owned `Bytes` sent with `data_bytes`, which russh cuts
//! into packets without copying (its `AsyncWrite` path copies into 8 KiB
//! pieces). Everything the server sends on the channel is taken off
//! russh's queue at once by a pump task: data goes on to the engine's
//! reader, the remote stderr to ours (escaped) as it comes, and how the
//! remote command ended is kept for the [`ChannelCompletion`]. Left
//! unread, russh's queue fills (with window notices during an upload) and
//! then stops the whole session, so nothing else may leave it to the
//! engine to read.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use russh::client::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, watch};

use crate::protocol::DataWrite;

type SendFuture = Pin<Box<dyn Future<Output = Result<(), russh::Error>> + Send>>;

/// Data messages held for the engine beyond russh's own queue: with it,
/// enough to keep a download moving while the engine writes to the disk.
const DATA_QUEUE: usize = 16;

/// How long the remote's last words (stderr) may follow its exit status.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// What is known of the remote side of the channel.
#[derive(Debug, Default, Clone)]
struct Ending {
    exit_status: Option<u32>,
    exit_signal: Option<String>,
    /// The remote side sent EOF or closed: it will read nothing more.
    remote_done: bool,
    /// The channel (or the connection) is gone.
    closed: bool,
}

/// The read side: the data the remote command writes.
pub struct ChannelReader {
    data: mpsc::Receiver<Bytes>,
    pending: Bytes,
}

/// The write side.
pub struct ChannelWriter {
    half: Arc<ChannelWriteHalf<Msg>>,
    sending: Option<SendFuture>,
    closed: bool,
    /// Set when the connection is gone.
    ended: watch::Receiver<bool>,
    ending: watch::Receiver<Ending>,
}

/// Learns how the remote command ended, once the engine is done.
pub struct ChannelCompletion {
    ending: watch::Receiver<Ending>,
    half: Arc<ChannelWriteHalf<Msg>>,
}

/// Splits an open exec channel into the engine's pipe and its completion,
/// and starts the pump that empties russh's queue. `ended` says when the
/// connection is gone: a write waiting for window space from a dead peer
/// would otherwise wait forever.
pub fn split(
    channel: russh::Channel<Msg>,
    ended: watch::Receiver<bool>,
) -> (ChannelReader, ChannelWriter, ChannelCompletion) {
    let (read, write) = channel.split();
    let write = Arc::new(write);
    let (data_sender, data) = mpsc::channel(DATA_QUEUE);
    let (ending_sender, ending) = watch::channel(Ending::default());
    tokio::spawn(pump(read, data_sender, ending_sender));
    (
        ChannelReader {
            data,
            pending: Bytes::new(),
        },
        ChannelWriter {
            half: write.clone(),
            sending: None,
            closed: false,
            ended,
            ending: ending.clone(),
        },
        ChannelCompletion {
            ending,
            half: write,
        },
    )
}

/// Takes every message off the channel until it closes (or the session
/// ends). Data waits for the engine (that wait is the flow control); once
/// the engine has let go of its reader, data is dropped.
async fn pump(mut half: ChannelReadHalf, data: mpsc::Sender<Bytes>, ending: watch::Sender<Ending>) {
    let mut data = Some(data);
    let mut stderr = StderrRelay::default();
    loop {
        match half.wait().await {
            Some(ChannelMsg::Data { data: bytes }) => {
                if let Some(sender) = &data
                    && sender.send(bytes).await.is_err()
                {
                    data = None;
                }
            }
            Some(ChannelMsg::ExtendedData { data, ext: 1 }) => stderr.push(&data),
            Some(ChannelMsg::ExitStatus { exit_status }) => {
                ending.send_modify(|e| e.exit_status = Some(exit_status));
            }
            Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
                ending.send_modify(|e| e.exit_signal = Some(format!("{signal_name:?}")));
            }
            Some(ChannelMsg::Eof) => {
                // The engine's reader sees the end of the data.
                data = None;
                ending.send_modify(|e| e.remote_done = true);
            }
            Some(ChannelMsg::Close) | None => break,
            Some(_) => {}
        }
    }
    stderr.flush();
    ending.send_modify(|e| {
        e.remote_done = true;
        e.closed = true;
    });
}

impl AsyncRead for ChannelReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.pending.is_empty() {
            match ready!(this.data.poll_recv(cx)) {
                Some(bytes) => this.pending = bytes,
                // The end of the data: nothing is put in `buf`.
                None => return Poll::Ready(Ok(())),
            }
        }
        let n = this.pending.len().min(buf.remaining());
        buf.put_slice(&this.pending.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for ChannelWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.as_mut().poll_flush(cx))?;
        if self.closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        self.start_sending(Bytes::copy_from_slice(buf));
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(sending) = self.sending.as_mut() {
            let result = ready!(sending.as_mut().poll(cx));
            self.sending = None;
            if result.is_err() {
                self.closed = true;
                return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
            }
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        if !self.closed {
            self.closed = true;
            let half = self.half.clone();
            self.sending = Some(Box::pin(async move { half.eof().await }));
            let _ = ready!(self.as_mut().poll_flush(cx));
        }
        Poll::Ready(Ok(()))
    }
}

/// Buffers go to russh as they are: its writes take owned bytes, and the
/// copy `poll_write` makes is saved.
impl DataWrite for ChannelWriter {
    fn takes_owned(&self) -> bool {
        true
    }

    fn send_owned(mut self: Pin<&mut Self>, data: Bytes) -> Result<(), Bytes> {
        if self.closed || self.sending.is_some() {
            return Err(data);
        }
        self.start_sending(data);
        Ok(())
    }
}

impl ChannelWriter {
    /// The flush after this waits for russh to take `data`.
    fn start_sending(&mut self, data: Bytes) {
        let half = self.half.clone();
        let mut ended = self.ended.clone();
        let mut ending = self.ending.clone();
        self.sending = Some(Box::pin(async move {
            // What can go now goes; what waits for window space gives up
            // once the connection, or the remote side of the channel, is
            // gone (a remote scp that exited reads nothing more).
            tokio::select! {
                biased;
                sent = half.data_bytes(data) => sent,
                _ = ended.wait_for(|&over| over) => Err(russh::Error::Disconnect),
                _ = ending.wait_for(|e| e.remote_done) => Err(russh::Error::Disconnect),
            }
        }));
    }
}

impl ChannelCompletion {
    /// Waits for the remote command's exit status (or the channel's end)
    /// and reports how it ended. Reads end by themselves when the session
    /// goes: russh drops the channel's queue then.
    pub async fn wait(mut self) -> Result<(), String> {
        // Our side is done: the remote scp may be waiting for end of input.
        let _ = self.half.eof().await;
        let known = |e: &Ending| e.exit_status.is_some() || e.exit_signal.is_some() || e.closed;
        let _ = self.ending.wait_for(known).await;
        // Its last stderr may follow the status; the close says it is all.
        let _ = tokio::time::timeout(CLOSE_GRACE, self.ending.wait_for(|e| e.closed)).await;
        let _ = self.half.close().await;
        let ending = self.ending.borrow().clone();
        match (ending.exit_status, ending.exit_signal) {
            (Some(0), _) => Ok(()),
            (Some(code), _) => Err(format!("remote command exited with status {code}")),
            (None, Some(signal)) => Err(format!("remote command killed by signal {signal}")),
            (None, None) => Err("remote command ended without an exit status".into()),
        }
    }

    /// Closes the channel without waiting for anything.
    pub async fn terminate(self) {
        let _ = self.half.close().await;
    }
}

/// Remote stderr, passed on a line at a time so that escaping never splits
/// a character. A line that never ends is passed on in pieces.
#[derive(Default)]
struct StderrRelay {
    partial: Vec<u8>,
}

const STDERR_LINE_LIMIT: usize = 4096;

impl StderrRelay {
    fn push(&mut self, data: &[u8]) {
        self.partial.extend_from_slice(data);
        while let Some(newline) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=newline).collect();
            crate::report::remote(&line);
        }
        if self.partial.len() > STDERR_LINE_LIMIT {
            let piece = std::mem::take(&mut self.partial);
            crate::report::remote(&piece);
        }
    }

    fn flush(&mut self) {
        if !self.partial.is_empty() {
            let piece = std::mem::take(&mut self.partial);
            crate::report::remote(&piece);
        }
    }
}
