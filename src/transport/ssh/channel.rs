//! An exec channel as a byte pipe for the engine.
//!
//! Writes become owned `Bytes` sent with `data_bytes`, which russh cuts
//! into packets without copying (its `AsyncWrite` path copies into 8 KiB
//! pieces). Reads take messages off russh's queue: data is handed over,
//! the remote stderr is relayed to ours (escaped), the exit status is kept.
//!
//! russh's queue must not be left unread: it fills up (with a window
//! notice for every adjust during an upload), and the next message then
//! stops the whole session, window adjusts included. So a write that
//! waits for window space reads the channel meanwhile, keeping the data it
//! finds for the reader, and gives up once the remote side has ended the
//! channel: a remote scp that exited reads nothing more.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use russh::client::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;

use crate::engine::DataWrite;

type WaitFuture = Pin<Box<dyn Future<Output = Option<ChannelMsg>> + Send>>;
type SendFuture = Pin<Box<dyn Future<Output = Result<(), russh::Error>> + Send>>;

/// The read half, shared by whoever reads: the engine's reader, a write
/// that waits, the completion. (Waiting on it is cancel-safe.)
type ReadHalf = Arc<tokio::sync::Mutex<ChannelReadHalf>>;

/// Data a waiting write may put aside for the reader; beyond it the
/// channel is left unread (a server that floods an upload gets stalled).
const STASH_LIMIT: usize = 1 << 20;

/// How long the remote's last words (stderr) may follow its exit status.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// How long the exit status may follow the end of the remote's output.
const STATUS_GRACE: Duration = Duration::from_secs(10);

/// What has come off the channel besides the data being read.
#[derive(Default)]
struct State {
    /// Data taken off the channel by a waiting write, for the reader.
    stash: VecDeque<Bytes>,
    stashed: usize,
    stderr: StderrRelay,
    exit_status: Option<u32>,
    exit_signal: Option<String>,
    /// The remote side sent EOF: the data has ended; it reads no more.
    eof: bool,
    /// The channel is closed (or its session gone).
    closed: bool,
}

type Shared = Arc<Mutex<State>>;

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl State {
    /// Takes in one message. Data is returned to the caller.
    fn take(&mut self, message: Option<ChannelMsg>) -> Option<Bytes> {
        match message {
            Some(ChannelMsg::Data { data }) => {
                // The remote command runs: what it said is for the user
                // (unless it was said on another channel already).
                if self.stderr.drop_at_output {
                    self.stderr.take_held();
                } else {
                    self.stderr.release();
                }
                return Some(data);
            }
            Some(ChannelMsg::ExtendedData { data, ext: 1 }) => self.stderr.push(&data),
            Some(ChannelMsg::ExitStatus { exit_status }) => self.exit_status = Some(exit_status),
            Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
                self.exit_signal = Some(format!("{signal_name:?}"));
            }
            Some(ChannelMsg::Eof) => self.eof = true,
            Some(ChannelMsg::Close) | None => {
                self.eof = true;
                self.closed = true;
                self.stderr.flush();
            }
            Some(_) => {}
        }
        None
    }
}

/// The read side: data for the engine.
pub struct ChannelReader {
    half: ReadHalf,
    shared: Shared,
    waiting: Option<WaitFuture>,
    pending: Bytes,
}

/// The write side.
pub struct ChannelWriter {
    write: Arc<ChannelWriteHalf<Msg>>,
    half: ReadHalf,
    shared: Shared,
    sending: Option<SendFuture>,
    closed: bool,
    /// Set when the connection is gone.
    ended: watch::Receiver<bool>,
}

/// Learns how the remote command ended, once the engine is done.
pub struct ChannelCompletion {
    write: Arc<ChannelWriteHalf<Msg>>,
    half: ReadHalf,
    shared: Shared,
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
    let half: ReadHalf = Arc::new(tokio::sync::Mutex::new(read));
    let shared = Shared::default();
    (
        ChannelReader {
            half: half.clone(),
            shared: shared.clone(),
            waiting: None,
            pending: Bytes::new(),
        },
        ChannelWriter {
            write: write.clone(),
            half: half.clone(),
            shared: shared.clone(),
            sending: None,
            closed: false,
            ended,
        },
        ChannelCompletion {
            write,
            half,
            shared,
        },
    )
}

/// The next message off the channel.
fn next_message(half: &ReadHalf) -> WaitFuture {
    let half = half.clone();
    Box::pin(async move { half.lock().await.wait().await })
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
            {
                let mut state = lock(&this.shared);
                if let Some(data) = state.stash.pop_front() {
                    state.stashed -= data.len();
                    this.pending = data;
                    continue;
                }
                if state.eof {
                    // The end of the data: nothing is put in `buf`.
                    return Poll::Ready(Ok(()));
                }
            }
            let waiting = this.waiting.get_or_insert_with(|| next_message(&this.half));
            let message = ready!(waiting.as_mut().poll(cx));
            this.waiting = None;
            if let Some(data) = lock(&this.shared).take(message) {
                this.pending = data;
            }
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
            let write = self.write.clone();
            self.sending = Some(Box::pin(async move { write.eof().await }));
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
        let write = self.write.clone();
        let mut ended = self.ended.clone();
        let (half, shared) = (self.half.clone(), self.shared.clone());
        self.sending = Some(Box::pin(async move {
            // What can go now goes; meanwhile the channel is read, and once
            // the remote side has ended it (or the connection is gone), the
            // rest will never be taken.
            tokio::select! {
                biased;
                sent = write.data_bytes(data) => sent,
                _ = ended.wait_for(|&over| over) => Err(russh::Error::Disconnect),
                () = read_while_waiting(&half, &shared) => Err(russh::Error::Disconnect),
            }
        }));
    }
}

/// Reads the channel for as long as a write waits: data is put aside for
/// the reader (up to [`STASH_LIMIT`]), the rest taken in. Returns once the
/// remote side has ended the channel.
async fn read_while_waiting(half: &ReadHalf, shared: &Shared) {
    loop {
        let (ended, full) = {
            let state = lock(shared);
            (state.eof, state.stashed > STASH_LIMIT)
        };
        if ended {
            return;
        }
        if full {
            return std::future::pending().await;
        }
        let message = half.lock().await.wait().await;
        let mut state = lock(shared);
        if let Some(data) = state.take(message) {
            state.stashed += data.len();
            state.stash.push_back(data);
        }
    }
}

impl ChannelCompletion {
    /// Reads on until the remote command's exit status (or the channel's
    /// end) and reports how it ended. Reads end by themselves when the
    /// session goes: russh drops the channel's queue then.
    pub async fn wait(self) -> Result<(), Option<String>> {
        self.read_to_end().await;
        let mut state = lock(&self.shared);
        state.stderr.release();
        state.stderr.flush();
        match (state.exit_status, state.exit_signal.take()) {
            (Some(0), _) => Ok(()),
            // Its stderr said why, as far as it could.
            (Some(_), _) => Err(None),
            (None, Some(signal)) => Err(Some(format!("remote command killed by signal {signal}"))),
            (None, None) => Err(Some("remote command ended without an exit status".into())),
        }
    }

    /// Keeps what the remote command says on stderr back until it sends
    /// its first byte of output (then it is shown), so that a command
    /// that could not run at all can be told apart quietly.
    pub fn hold_stderr(&self) {
        lock(&self.shared).stderr.hold();
    }

    /// Like [`ChannelCompletion::hold_stderr`], but what was held is
    /// dropped at the first output: for another session of a command
    /// whose start (login scripts' noise) the user has seen once.
    pub fn drop_startup_stderr(&self) {
        let mut state = lock(&self.shared);
        state.stderr.hold();
        state.stderr.drop_at_output = true;
    }

    /// For a remote command that sent no output: waits for its end, and
    /// returns its exit status and the stderr held back (not shown).
    pub async fn ended_silently(self) -> (Option<u32>, Vec<u8>) {
        self.read_to_end().await;
        let mut state = lock(&self.shared);
        (state.exit_status, state.stderr.take_held())
    }

    async fn read_to_end(&self) {
        // Our side is done: the remote scp may be waiting for end of input.
        let _ = self.write.eof().await;
        let mut half = self.half.lock().await;
        let known = |state: &State| {
            state.exit_status.is_some() || state.exit_signal.is_some() || state.closed
        };
        // Until the remote side has ended its output, it may still be at
        // work; after that, its status is due at once (a server that
        // never sends it must not keep the run waiting).
        while !known(&lock(&self.shared)) && !lock(&self.shared).eof {
            let message = half.wait().await;
            lock(&self.shared).take(message);
        }
        let _ = tokio::time::timeout(STATUS_GRACE, async {
            while !known(&lock(&self.shared)) {
                let message = half.wait().await;
                lock(&self.shared).take(message);
            }
        })
        .await;
        // Its last stderr may follow the status; the close says it is all.
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            while !lock(&self.shared).closed {
                let message = half.wait().await;
                lock(&self.shared).take(message);
            }
        })
        .await;
        drop(half);
        let _ = self.write.close().await;
    }

    /// Closes the channel without waiting for anything.
    pub async fn terminate(self) {
        let _ = self.write.close().await;
    }
}

/// Remote stderr, passed on a line at a time so that escaping never splits
/// a character. A line that never ends is passed on in pieces.
#[derive(Default)]
struct StderrRelay {
    partial: Vec<u8>,
    /// Held back (see `ChannelCompletion::hold_stderr`), at most
    /// `HELD_LIMIT` bytes: beyond that it is shown after all.
    held: Option<Vec<u8>>,
    /// What was held is dropped, not shown, at the first output.
    drop_at_output: bool,
}

const HELD_LIMIT: usize = 16 * 1024;

const STDERR_LINE_LIMIT: usize = 4096;

impl StderrRelay {
    fn hold(&mut self) {
        self.held.get_or_insert_with(Vec::new);
    }

    /// Shows what was held back, and holds no more.
    fn release(&mut self) {
        if let Some(held) = self.held.take() {
            self.push(&held);
        }
    }

    fn take_held(&mut self) -> Vec<u8> {
        self.held.take().unwrap_or_default()
    }

    fn push(&mut self, data: &[u8]) {
        if let Some(held) = self.held.as_mut() {
            held.extend_from_slice(data);
            if held.len() > HELD_LIMIT {
                self.release();
            }
            return;
        }
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

    /// Shows a last line without its newline (what is held stays held).
    fn flush(&mut self) {
        if !self.partial.is_empty() {
            let piece = std::mem::take(&mut self.partial);
            crate::report::remote(&piece);
        }
    }
}
