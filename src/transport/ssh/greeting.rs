//! The round trip to the server, learned before russh takes the stream, to
//! size the channel window: russh fixes the window for the whole session
//! when it starts and ignores later adjustments.
//!
//! A direct TCP connection has the kernel's measure (TCP_INFO), free. When
//! that says the server is near (a LAN, or a local port forward or proxy
//! that hides the real path) or there is no socket (ProxyCommand,
//! ProxyJump), the version exchange measures it: we send our version line
//! only after the server's, and OpenSSH's sshd sends its key exchange only
//! after reading ours, so the time between is one round trip through
//! whatever carries the stream. That costs one round trip, which is small
//! exactly when the kernel's measure was small, and otherwise the price of
//! knowing it behind a proxy.
//!
//! Nothing here fails: whatever was read is replayed to russh, and an I/O
//! error is handed on at russh's first read or write, so that russh reports
//! a bad banner or a closed connection in its own words.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Our version line, without its CR LF.
pub const CLIENT_ID: &str = concat!("SSH-2.0-rscp_", env!("CARGO_PKG_VERSION"));

/// A kernel round trip at least this long is a real path: no exchange.
pub const FAR: Duration = Duration::from_millis(1);

/// Servers may send lines before their version line; this much is read at
/// most while looking for it (russh allows lines of 255 bytes).
const MAX_BEFORE_VERSION: usize = 64 * 1024;

/// How long to wait for the server's version line before sending ours
/// anyway (for a server that waits for the client's), and then for its
/// key exchange (for a server that waits for ours). Either costs this once
/// and leaves the round trip unmeasured.
const PATIENCE: Duration = Duration::from_secs(1);

/// Window bounds: below 4 MiB nothing is gained on fast links (sshd works
/// no harder); above 64 MiB sshd spends its time growing the buffer that
/// holds what a slower reader has not taken yet.
const MIN_WINDOW: u32 = 4 * 1024 * 1024;
const MAX_WINDOW: u32 = 64 * 1024 * 1024;
/// Used when the round trip is unknown: 400 MB/s at 40 ms.
const UNMEASURED_WINDOW: u32 = 16 * 1024 * 1024;
/// The rate the window is sized for: window = round trip × this.
const TARGET_RATE: f64 = 1024.0 * 1024.0 * 1024.0;

/// The channel window to advertise: one round trip at 1 GiB/s, bounded.
pub fn window_size(round_trip: Option<Duration>) -> u32 {
    match round_trip {
        None => UNMEASURED_WINDOW,
        Some(rtt) => {
            let bytes = rtt.as_secs_f64() * TARGET_RATE;
            bytes.clamp(f64::from(MIN_WINDOW), f64::from(MAX_WINDOW)) as u32
        }
    }
}

/// The kernel's smoothed round trip of a connected TCP socket.
pub fn kernel_round_trip(socket: &tokio::net::TcpStream) -> Option<Duration> {
    use std::os::fd::AsRawFd;
    // SAFETY: getsockopt writes at most `length` bytes into `info`, a plain
    // C struct for which all-zero bytes are a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut length = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    let status = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut length,
        )
    };
    (status == 0 && info.tcpi_rtt > 0).then(|| Duration::from_micros(u64::from(info.tcpi_rtt)))
}

/// What the exchange learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeting {
    /// The server's version line, without line end.
    pub server_version: Option<String>,
    pub round_trip: Option<Duration>,
}

/// Reads the server's version line, writes ours, waits for the server's
/// next bytes. Returns a stream for russh that replays what was read and
/// drops russh's own (identical) version line.
pub async fn exchange<S>(mut stream: S) -> (Greeted<S>, Greeting)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let line = format!("{CLIENT_ID}\r\n").into_bytes();
    let mut greeting = Greeting {
        server_version: None,
        round_trip: None,
    };
    let mut read = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + PATIENCE;
    // Ok(end of the version line), or why there is none.
    let found: Result<usize, Option<io::Error>> = loop {
        if let Some((start, end)) = version_line(&read) {
            let version = String::from_utf8_lossy(&read[start..end]);
            greeting.server_version = Some(version.trim_end_matches(['\r', '\n']).to_owned());
            break Ok(end);
        }
        if read.len() >= MAX_BEFORE_VERSION {
            break Err(None);
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Err(_) => break Err(None),
            Ok(Ok(n)) => read.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => break Err(Some(e)),
        }
    };
    let version_end = match found {
        Ok(end) => end,
        // No version line (yet): russh takes over from here, sends its own
        // line and reports what is wrong.
        Err(error) => return (Greeted::new(stream, read, Vec::new(), error), greeting),
    };
    let written = async {
        stream.write_all(&line).await?;
        stream.flush().await
    }
    .await;
    if let Err(e) = written {
        return (Greeted::new(stream, read, line, Some(e)), greeting);
    }
    let sent = Instant::now();
    // A server that sent more before it had our line tells us nothing.
    let mut pending_error = None;
    if version_end == read.len() {
        match tokio::time::timeout(PATIENCE, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Err(_) => {}
            Ok(Ok(n)) => {
                greeting.round_trip = Some(sent.elapsed());
                read.extend_from_slice(&chunk[..n]);
            }
            Ok(Err(e)) => pending_error = Some(e),
        }
    }
    (Greeted::new(stream, read, line, pending_error), greeting)
}

/// Where the server's version line is: (start, end after its LF).
fn version_line(read: &[u8]) -> Option<(usize, usize)> {
    let mut start = 0;
    while let Some(lf) = read[start..].iter().position(|&b| b == b'\n') {
        let end = start + lf + 1;
        if read[start..].starts_with(b"SSH-") {
            return Some((start, end));
        }
        start = end;
    }
    None
}

/// The stream handed to russh after the exchange.
pub struct Greeted<S> {
    inner: S,
    /// What the exchange read, for russh to read again.
    replay: Bytes,
    /// Our version line, already sent: russh's copy of it is dropped.
    sent_line: Vec<u8>,
    swallowed: usize,
    pending_error: Option<io::Error>,
}

impl<S> Greeted<S> {
    fn new(
        inner: S,
        replay: Vec<u8>,
        sent_line: Vec<u8>,
        pending_error: Option<io::Error>,
    ) -> Greeted<S> {
        Greeted {
            inner,
            replay: Bytes::from(replay),
            sent_line,
            swallowed: 0,
            pending_error,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Greeted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.replay.is_empty() {
            let n = this.replay.len().min(buf.remaining());
            buf.put_slice(&this.replay.split_to(n));
            return Poll::Ready(Ok(()));
        }
        if let Some(e) = this.pending_error.take() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Greeted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if let Some(e) = this.pending_error.take() {
            return Poll::Ready(Err(e));
        }
        if this.swallowed < this.sent_line.len() {
            let left = &this.sent_line[this.swallowed..];
            let n = left.len().min(buf.len());
            if buf[..n] != left[..n] {
                return Poll::Ready(Err(io::Error::other(
                    "SSH version line differs from the one sent",
                )));
            }
            this.swallowed += n;
            return Poll::Ready(Ok(n));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.swallowed < self.sent_line.len() || self.pending_error.is_some() {
            let first = bufs.iter().find(|b| !b.is_empty());
            return match first {
                Some(b) => self.poll_write(cx, b),
                None => Poll::Ready(Ok(0)),
            };
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::duplex;

    const BANNER: &[u8] = b"SSH-2.0-OpenSSH_9.2p1 Debian\r\n";
    const KEXINIT: &[u8] = b"\x00\x00\x01\x0c\x05\x14kexinit";

    fn our_line() -> Vec<u8> {
        format!("{CLIENT_ID}\r\n").into_bytes()
    }

    /// A server like sshd: version at once, key exchange `delay` after our
    /// line. Returns all it read.
    async fn sshd_like(mut server: tokio::io::DuplexStream, delay: Duration) -> Vec<u8> {
        server.write_all(BANNER).await.unwrap();
        let mut got = vec![0u8; our_line().len()];
        server.read_exact(&mut got).await.unwrap();
        tokio::time::sleep(delay).await;
        server.write_all(KEXINIT).await.unwrap();
        let mut rest = vec![0u8; 5];
        server.read_exact(&mut rest).await.unwrap();
        got.extend_from_slice(&rest);
        got
    }

    #[tokio::test]
    async fn measures_the_wait_for_the_key_exchange_and_replays_everything() {
        let (client, server) = duplex(1 << 16);
        let peer = tokio::spawn(sshd_like(server, Duration::from_millis(40)));
        let (mut greeted, greeting) = exchange(client).await;
        let rtt = greeting.round_trip.unwrap();
        assert!(rtt >= Duration::from_millis(40), "{rtt:?}");
        assert!(rtt < PATIENCE, "{rtt:?}");
        assert_eq!(
            greeting.server_version.as_deref(),
            Some("SSH-2.0-OpenSSH_9.2p1 Debian")
        );
        // russh writes its version line (in pieces here), then data.
        let line = our_line();
        greeted.write_all(&line[..3]).await.unwrap();
        greeted.write_all(&line[3..]).await.unwrap();
        greeted.write_all(b"hello").await.unwrap();
        let mut seen = vec![0u8; BANNER.len() + KEXINIT.len()];
        greeted.read_exact(&mut seen).await.unwrap();
        assert_eq!(seen, [BANNER, KEXINIT].concat());
        // The server saw our line once, then russh's data.
        assert_eq!(peer.await.unwrap(), [&line[..], b"hello"].concat());
    }

    #[tokio::test]
    async fn an_eager_server_gives_no_measure_and_lines_before_the_version_are_kept() {
        let (client, mut server) = duplex(1 << 16);
        server.write_all(b"hello there\r\n").await.unwrap();
        server.write_all(BANNER).await.unwrap();
        server.write_all(KEXINIT).await.unwrap();
        let (mut greeted, greeting) = exchange(client).await;
        assert_eq!(
            greeting.server_version.as_deref(),
            Some("SSH-2.0-OpenSSH_9.2p1 Debian")
        );
        assert_eq!(greeting.round_trip, None);
        let mut seen = vec![0u8; 13 + BANNER.len() + KEXINIT.len()];
        greeted.read_exact(&mut seen).await.unwrap();
        assert_eq!(seen, [b"hello there\r\n", BANNER, KEXINIT].concat());
        let mut sent = vec![0u8; our_line().len()];
        server.read_exact(&mut sent).await.unwrap();
        assert_eq!(sent, our_line());
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_that_waits_for_our_key_exchange_costs_the_patience() {
        let (client, mut server) = duplex(1 << 16);
        server.write_all(BANNER).await.unwrap();
        let started = tokio::time::Instant::now();
        let (mut greeted, greeting) = exchange(client).await;
        assert_eq!(started.elapsed(), PATIENCE);
        assert_eq!(greeting.round_trip, None);
        let mut seen = vec![0u8; BANNER.len()];
        greeted.read_exact(&mut seen).await.unwrap();
        assert_eq!(seen, BANNER);
        // Later bytes come straight from the stream.
        server.write_all(KEXINIT).await.unwrap();
        let mut more = vec![0u8; KEXINIT.len()];
        greeted.read_exact(&mut more).await.unwrap();
        assert_eq!(more, KEXINIT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_that_waits_for_our_version_gets_russhs() {
        let (client, mut server) = duplex(1 << 16);
        let started = tokio::time::Instant::now();
        let (mut greeted, greeting) = exchange(client).await;
        assert_eq!(started.elapsed(), PATIENCE);
        assert_eq!(
            greeting,
            Greeting {
                server_version: None,
                round_trip: None
            }
        );
        // Nothing was sent: russh's line goes through as it is.
        greeted.write_all(b"SSH-2.0-x\r\n").await.unwrap();
        let mut sent = vec![0u8; 11];
        server.read_exact(&mut sent).await.unwrap();
        assert_eq!(sent, b"SSH-2.0-x\r\n");
    }

    #[tokio::test]
    async fn a_closed_connection_reaches_russh_as_end_of_stream() {
        let (client, mut server) = duplex(1 << 16);
        server.write_all(b"not ssh\r\n").await.unwrap();
        drop(server);
        let (mut greeted, greeting) = exchange(client).await;
        assert_eq!(
            greeting,
            Greeting {
                server_version: None,
                round_trip: None
            }
        );
        let mut all = Vec::new();
        greeted.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"not ssh\r\n");
    }

    #[tokio::test]
    async fn a_failed_write_of_our_line_reaches_russhs_first_write() {
        let (client, mut server) = duplex(1 << 16);
        server.write_all(BANNER).await.unwrap();
        drop(server);
        let (mut greeted, greeting) = exchange(client).await;
        assert_eq!(
            greeting.server_version.as_deref(),
            Some("SSH-2.0-OpenSSH_9.2p1 Debian")
        );
        assert_eq!(greeting.round_trip, None);
        let error = greeted.write_all(&our_line()).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);
        let mut seen = Vec::new();
        greeted.read_to_end(&mut seen).await.unwrap();
        assert_eq!(seen, BANNER);
    }

    #[tokio::test]
    async fn a_different_version_line_from_russh_is_an_error() {
        let (client, server) = duplex(1 << 16);
        let _peer = tokio::spawn(sshd_like(server, Duration::ZERO));
        let (mut greeted, _) = exchange(client).await;
        let error = greeted.write_all(b"SSH-2.0-other\r\n").await.unwrap_err();
        assert!(error.to_string().contains("version line"), "{error}");
    }

    #[test]
    fn window_is_one_round_trip_at_a_gigabyte_per_second_within_bounds() {
        let at = |ms: u64| window_size(Some(Duration::from_millis(ms)));
        assert_eq!(at(1), MIN_WINDOW);
        assert_eq!(at(10), 10_737_418);
        assert_eq!(at(40), 42_949_672);
        assert_eq!(at(300), MAX_WINDOW);
        assert_eq!(window_size(None), UNMEASURED_WINDOW);
    }

    #[tokio::test]
    async fn the_kernel_knows_a_loopback_round_trip() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (client, _server) =
            tokio::join!(tokio::net::TcpStream::connect(address), listener.accept());
        let rtt = kernel_round_trip(&client.unwrap()).unwrap();
        assert!(
            rtt > Duration::ZERO && rtt < Duration::from_millis(500),
            "{rtt:?}"
        );
    }
}
