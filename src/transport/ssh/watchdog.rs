//! A write that stays stuck means the peer stopped reading.
//!
//! russh's keepalive notices a peer that stopped answering, but only while
//! its loop is free: with an upload in flight it waits for the socket to
//! take pending bytes and looks at no timer but its inactivity one (which
//! would also cut off a user typing a password). This wrapper fails a write
//! that has made no progress for the given time, which ends the session.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

pub struct WriteWatchdog<S> {
    inner: S,
    limit: Duration,
    /// Running while a write or flush is pending.
    timer: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteWatchdog<S> {
    pub fn new(inner: S, limit: Duration) -> WriteWatchdog<S> {
        WriteWatchdog {
            inner,
            limit,
            timer: None,
        }
    }

    /// Called when the inner write is pending: arms the timer, or fails
    /// if it has run out.
    fn stuck<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let limit = self.limit;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "peer stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progressed<T>(&mut self, result: io::Result<T>) -> Poll<io::Result<T>> {
        self.timer = None;
        Poll::Ready(result)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteWatchdog<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteWatchdog<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(result) => self.progressed(result),
            Poll::Pending => self.stuck(cx),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Ready(result) => self.progressed(result),
            Poll::Pending => self.stuck(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test(start_paused = true)]
    async fn a_write_nobody_reads_times_out() {
        let (ours, _theirs) = tokio::io::duplex(16);
        let mut guarded = WriteWatchdog::new(ours, Duration::from_secs(3));
        let started = tokio::time::Instant::now();
        let result = guarded.write_all(&[0u8; 64]).await;
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed().as_secs(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn writes_that_progress_do_not() {
        let (ours, mut theirs) = tokio::io::duplex(16);
        let mut guarded = WriteWatchdog::new(ours, Duration::from_secs(3));
        let reader = tokio::spawn(async move {
            let mut sink = Vec::new();
            let mut buf = [0u8; 8];
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                match tokio::io::AsyncReadExt::read(&mut theirs, &mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink.extend_from_slice(&buf[..n]),
                }
            }
            sink.len()
        });
        guarded.write_all(&[1u8; 64]).await.unwrap();
        drop(guarded);
        assert_eq!(reader.await.unwrap(), 64);
    }
}
