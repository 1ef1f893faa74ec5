//! An exec channel as a byte pipe for the engine.
//!
//! Writes become owned `Bytes` sent with `data_bytes`, which russh cuts
//! into packets without copying (its `AsyncWrite` path copies into 8 KiB
//! pieces). Reads come from `wait()`: data is handed over, the remote
//! stderr is relayed to ours with control characters escaped, and the
//! exit status is kept. When the engine drops the reader, the read half
//! goes to the [`Completion`] so that it can go on reading until the exit
//! status arrives (a reader that stops at end of data would lose it).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use russh::client::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{oneshot, watch};

use crate::protocol::DataWrite;

type WaitFuture = Pin<Box<dyn Future<Output = (ChannelReadHalf, Option<ChannelMsg>)> + Send>>;
type SendFuture = Pin<Box<dyn Future<Output = Result<(), russh::Error>> + Send>>;

/// How the remote command ended.
#[derive(Debug, Default)]
struct Ending {
    exit_status: Option<u32>,
    exit_signal: Option<String>,
}

/// The read side: data for the engine, stderr to ours.
pub struct ChannelReader {
    half: Option<ChannelReadHalf>,
    waiting: Option<WaitFuture>,
    pending: Bytes,
    stderr: StderrRelay,
    ending: Ending,
    at_end: bool,
    give_back: Option<oneshot::Sender<Leftover>>,
}

/// What the reader hands to the completion when it is dropped.
pub struct Leftover {
    half: Option<ChannelReadHalf>,
    stderr: StderrRelay,
    ending: Ending,
}

/// The write side.
pub struct ChannelWriter {
    half: Arc<ChannelWriteHalf<Msg>>,
    sending: Option<SendFuture>,
    closed: bool,
    ended: watch::Receiver<bool>,
}

/// Collects the end of the remote command once the engine is done.
pub struct ChannelCompletion {
    leftover: oneshot::Receiver<Leftover>,
    half: Arc<ChannelWriteHalf<Msg>>,
}

/// Resolves when the session is over.
async fn session_ended(mut ended: watch::Receiver<bool>) {
    let _ = ended.wait_for(|&over| over).await;
}

/// Splits an open exec channel into the engine's pipe and its completion.
/// `ended` says when the connection is gone: a write waiting for window
/// space from a dead peer would otherwise wait forever.
pub fn split(
    channel: russh::Channel<Msg>,
    ended: watch::Receiver<bool>,
) -> (ChannelReader, ChannelWriter, ChannelCompletion) {
    let (read, write) = channel.split();
    let write = Arc::new(write);
    let (give_back, leftover) = oneshot::channel();
    (
        ChannelReader {
            half: Some(read),
            waiting: None,
            pending: Bytes::new(),
            stderr: StderrRelay::default(),
            ending: Ending::default(),
            at_end: false,
            give_back: Some(give_back),
        },
        ChannelWriter {
            half: write.clone(),
            sending: None,
            closed: false,
            ended,
        },
        ChannelCompletion {
            leftover,
            half: write,
        },
    )
}

fn wait(mut half: ChannelReadHalf) -> WaitFuture {
    Box::pin(async move {
        let message = half.wait().await;
        (half, message)
    })
}

impl AsyncRead for ChannelReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.pending.is_empty() {
                let n = this.pending.len().min(buf.remaining());
                buf.put_slice(&this.pending.split_to(n));
                return Poll::Ready(Ok(()));
            }
            if this.at_end {
                return Poll::Ready(Ok(()));
            }
            if this.waiting.is_none() {
                match this.half.take() {
                    Some(half) => this.waiting = Some(wait(half)),
                    None => return Poll::Ready(Ok(())),
                }
            }
            let Some(waiting) = this.waiting.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            let (half, message) = ready!(waiting.as_mut().poll(cx));
            this.waiting = None;
            this.half = Some(half);
            match message {
                Some(ChannelMsg::Data { data }) => this.pending = data,
                Some(other) => {
                    if handle_other(other, &mut this.stderr, &mut this.ending) {
                        this.at_end = true;
                    }
                }
                None => {
                    this.at_end = true;
                    this.half = None;
                }
            }
        }
    }
}

/// Everything but data. True at the end of the data (EOF or close).
fn handle_other(message: ChannelMsg, stderr: &mut StderrRelay, ending: &mut Ending) -> bool {
    match message {
        ChannelMsg::ExtendedData { data, ext: 1 } => stderr.push(&data),
        ChannelMsg::ExitStatus { exit_status } => ending.exit_status = Some(exit_status),
        ChannelMsg::ExitSignal { signal_name, .. } => {
            ending.exit_signal = Some(format!("{signal_name:?}"))
        }
        ChannelMsg::Eof | ChannelMsg::Close => return true,
        _ => {}
    }
    false
}

impl Drop for ChannelReader {
    fn drop(&mut self) {
        if let Some(give_back) = self.give_back.take() {
            // A wait in progress holds the read half; dropping it loses at
            // most the message it was waiting for, which is the reason to
            // hand over only between messages.
            let half = if self.waiting.is_some() {
                None
            } else {
                self.half.take()
            };
            let _ = give_back.send(Leftover {
                half,
                stderr: std::mem::take(&mut self.stderr),
                ending: std::mem::take(&mut self.ending),
            });
        }
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
        let ended = self.ended.clone();
        self.sending = Some(Box::pin(async move {
            tokio::select! {
                sent = half.data_bytes(data) => sent,
                () = session_ended(ended) => Err(russh::Error::Disconnect),
            }
        }));
    }
}

impl ChannelCompletion {
    /// Reads on until the remote command's exit status (or the channel's
    /// end) and reports how it ended.
    /// (Reads end by themselves when the session goes: russh drops the
    /// channel's queue then.)
    pub async fn wait(self) -> Result<(), String> {
        // Our side is done: the remote scp may be waiting for end of input.
        let _ = self.half.eof().await;
        let Ok(mut leftover) = self.leftover.await else {
            return Err("the channel was lost".into());
        };
        if let Some(mut half) = leftover.half.take() {
            while leftover.ending.exit_status.is_none() && leftover.ending.exit_signal.is_none() {
                match half.wait().await {
                    Some(ChannelMsg::Close) | None => break,
                    Some(ChannelMsg::Data { .. }) => {}
                    Some(other) => {
                        handle_other(other, &mut leftover.stderr, &mut leftover.ending);
                    }
                }
            }
        }
        leftover.stderr.flush();
        let _ = self.half.close().await;
        match (leftover.ending.exit_status, leftover.ending.exit_signal) {
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
            // A CR before the newline ends the line too (remote logs use CRLF).
            let text = &line[..line.len() - 1];
            write_stderr(text.strip_suffix(b"\r").unwrap_or(text));
        }
        if self.partial.len() > STDERR_LINE_LIMIT {
            let piece = std::mem::take(&mut self.partial);
            write_stderr(&piece);
        }
    }

    fn flush(&mut self) {
        if !self.partial.is_empty() {
            let piece = std::mem::take(&mut self.partial);
            write_stderr(&piece);
        }
    }
}

fn write_stderr(line: &[u8]) {
    crate::report::remote(line);
}
