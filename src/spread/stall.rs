//! A helper whose remote scp stops answering (it neither reads nor
//! replies, while the connection itself is alive: keepalives pass) would
//! hold up the whole upload, since the first channel waits for every
//! helper at each directory it finishes. A helper's channel is read and
//! written through this watch: a read or write that has waited
//! [`STALL_LIMIT`] with nothing moving either way fails, and so does
//! every helper's next one (the spread is cut), so that the first channel
//! sends what they held, and the rest, as scp would.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::engine::DataWrite;

/// How long a helper's channel may wait with nothing moving. Long enough
/// for a remote disk that is slow to close a file; scp itself waits for
/// good.
pub const STALL_LIMIT: Duration = Duration::from_secs(30);

/// What the two halves of one channel share.
#[derive(Default)]
pub struct Pulse {
    /// Bumped whenever a byte moved (or work was taken up after a pause).
    beats: AtomicU64,
    /// A wait ran out on this channel.
    stalled: AtomicBool,
    /// Set for every helper's channel once one has stalled.
    cut: Arc<AtomicBool>,
}

impl Pulse {
    /// A channel's pulse, cut along with the others sharing `cut`.
    pub fn new(cut: Arc<AtomicBool>) -> Pulse {
        Pulse {
            cut,
            ..Pulse::default()
        }
    }

    /// Something moved: a wait starts over.
    pub fn beat(&self) {
        self.beats.fetch_add(1, Ordering::AcqRel);
    }

    /// Whether a wait ran out on this channel.
    pub fn stalled(&self) -> bool {
        self.stalled.load(Ordering::Acquire)
    }

    /// Whether a wait ran out on this channel or one sharing its cut.
    pub fn cut(&self) -> bool {
        self.cut.load(Ordering::Acquire)
    }
}

/// One half of a watched channel.
pub struct Watched<S> {
    inner: S,
    pulse: Arc<Pulse>,
    limit: Duration,
    /// While a read or write is pending: the timer, and the beats when it
    /// was set.
    timer: Option<(Pin<Box<Sleep>>, u64)>,
}

impl<S> Watched<S> {
    pub fn new(inner: S, pulse: Arc<Pulse>, limit: Duration) -> Watched<S> {
        Watched {
            inner,
            pulse,
            limit,
            timer: None,
        }
    }

    fn moved<T>(&mut self, result: io::Result<T>, moved: bool) -> Poll<io::Result<T>> {
        if moved {
            self.pulse.beat();
        }
        self.timer = None;
        Poll::Ready(result)
    }

    /// The inner side is pending: waits on, or fails once nothing has
    /// moved for the limit.
    fn waiting<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let beats = self.pulse.beats.load(Ordering::Acquire);
        let limit = self.limit;
        let (timer, seen) = self
            .timer
            .get_or_insert_with(|| (Box::pin(tokio::time::sleep(limit)), beats));
        if *seen != beats {
            timer.as_mut().reset(Instant::now() + limit);
            *seen = beats;
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.pulse.stalled.store(true, Ordering::Release);
                self.pulse.cut.store(true, Ordering::Release);
                Poll::Ready(Err(stalled()))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

fn stalled() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "no answer")
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.pulse.cut() {
            return Poll::Ready(Err(stalled()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                let moved = buf.filled().len() > before;
                self.moved(result, moved)
            }
            Poll::Pending => self.waiting(cx),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.pulse.cut() {
            return Poll::Ready(Err(stalled()));
        }
        match Pin::new(&mut self.inner).poll_write(cx, data) {
            Poll::Ready(result) => {
                let moved = matches!(result, Ok(n) if n > 0);
                self.moved(result, moved)
            }
            Poll::Pending => self.waiting(cx),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.pulse.cut() {
            return Poll::Ready(Err(stalled()));
        }
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Ready(result) => {
                let moved = result.is_ok();
                self.moved(result, moved)
            }
            Poll::Pending => self.waiting(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: DataWrite> DataWrite for Watched<S> {
    fn takes_owned(&self) -> bool {
        self.inner.takes_owned()
    }

    fn send_owned(mut self: Pin<&mut Self>, data: Bytes) -> Result<(), Bytes> {
        // (It only starts the send: the flush that follows is what moves.)
        Pin::new(&mut self.inner).send_owned(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const LIMIT: Duration = Duration::from_secs(30);

    #[tokio::test(start_paused = true)]
    async fn a_reply_that_never_comes_ends_the_wait() {
        let (ours, _theirs) = tokio::io::duplex(64);
        let pulse = Arc::new(Pulse::default());
        let mut reader = Watched::new(ours, pulse.clone(), LIMIT);
        let started = Instant::now();
        let mut byte = [0u8];
        let error = reader.read(&mut byte).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), LIMIT);
        assert!(pulse.stalled());
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_waits_on_while_the_other_half_moves() {
        // The reply is due only once the data is all taken, which the peer
        // does slowly: a byte every 10 s, over 60 s.
        let (ours, mut theirs) = tokio::io::duplex(1);
        let (read_half, write_half) = tokio::io::split(ours);
        let pulse = Arc::new(Pulse::default());
        let mut reader = Watched::new(read_half, pulse.clone(), LIMIT);
        let mut writer = Watched::new(write_half, pulse.clone(), LIMIT);
        let peer = tokio::spawn(async move {
            let mut byte = [0u8];
            for _ in 0..6 {
                tokio::time::sleep(Duration::from_secs(10)).await;
                theirs.read_exact(&mut byte).await.unwrap();
            }
            theirs.write_all(b"\0").await.unwrap();
            theirs
        });
        let started = Instant::now();
        let (wrote, reply) = tokio::join!(writer.write_all(&[7u8; 6]), async {
            let mut byte = [9u8];
            reader.read_exact(&mut byte).await.map(|_| byte[0])
        });
        wrote.unwrap();
        assert_eq!(reply.unwrap(), 0);
        assert!(started.elapsed() >= Duration::from_secs(60));
        assert!(!pulse.stalled());
        drop(peer.await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn a_beat_after_a_pause_starts_the_wait_over() {
        let (ours, mut theirs) = tokio::io::duplex(64);
        let pulse = Arc::new(Pulse::default());
        let mut reader = Watched::new(ours, pulse.clone(), LIMIT);
        // A read left pending for 20 s, then given up by its caller...
        let mut byte = [0u8];
        let first = tokio::time::timeout(Duration::from_secs(20), reader.read(&mut byte)).await;
        assert!(first.is_err());
        // ...idle for a minute; work resumes and the answer takes 20 s.
        tokio::time::sleep(Duration::from_secs(60)).await;
        pulse.beat();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(20)).await;
            theirs.write_all(b"\0").await.unwrap();
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
        assert_eq!(reader.read(&mut byte).await.unwrap(), 1);
        assert!(!pulse.stalled());
    }

    #[tokio::test(start_paused = true)]
    async fn once_one_stalls_every_channel_sharing_its_cut_fails_at_once() {
        let (ours, _theirs) = tokio::io::duplex(1);
        let (read_half, write_half) = tokio::io::split(ours);
        let cut = Arc::new(AtomicBool::new(false));
        let pulse = Arc::new(Pulse::new(cut.clone()));
        let mut reader = Watched::new(read_half, pulse.clone(), LIMIT);
        let mut writer = Watched::new(write_half, pulse.clone(), LIMIT);
        let (other, mut peer) = tokio::io::duplex(64);
        let other_pulse = Arc::new(Pulse::new(cut.clone()));
        let mut healthy = Watched::new(other, other_pulse.clone(), LIMIT);
        healthy.write_all(b"fine").await.unwrap();
        let mut byte = [0u8];
        assert!(reader.read(&mut byte).await.is_err());
        let started = Instant::now();
        assert!(writer.write_all(b"more").await.is_err());
        assert!(healthy.write_all(b"more").await.is_err());
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert!(pulse.stalled() && !other_pulse.stalled() && other_pulse.cut());
        let mut got = [0u8; 4];
        peer.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"fine");
    }
}
