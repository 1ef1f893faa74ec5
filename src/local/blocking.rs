//! File data I/O for the engine. A file of several chunks moves through
//! tokio's blocking pool, so that disk and network overlap: while one
//! buffer is on its way to (or from) the disk, the other is on the wire. A
//! file that fits in one chunk has nothing to overlap with, and a trip to
//! the pool costs more than the I/O itself, so it is done in place; so is
//! a file in memory, and what a read finds in the page cache.
//! Buffers are owned and handed back, never copied.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use tokio::task::JoinHandle;

/// A buffer the I/O fills or empties: a `Vec`, or a `BytesMut` that can be
/// handed to a channel without copying.
pub(crate) trait Buffer: AsMut<[u8]> + Send + 'static {}
impl<B: AsMut<[u8]> + Send + 'static> Buffer for B {}

type Done<B> = (B, io::Result<usize>);

/// An I/O operation on a buffer: finished already, or running in the pool.
pub(crate) enum Pending<B> {
    Ready(Done<B>),
    Running(JoinHandle<Done<B>>),
}

/// How the operation is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// On the blocking pool, to overlap with the network.
    Background,
    /// Here and now.
    Inline,
}

impl Mode {
    /// Overlap pays only for files of more than one chunk, and only where
    /// I/O can wait for a disk: a file in memory (tmpfs) is done in place.
    pub fn for_file(file: &File, size: u64) -> Mode {
        if size <= super::CHUNK as u64 || in_memory(file) {
            Mode::Inline
        } else {
            Mode::Background
        }
    }
}

/// Whether the file lives on a file system without a disk.
fn in_memory(file: &File) -> bool {
    // From linux/magic.h.
    const TMPFS_MAGIC: u64 = 0x0102_1994;
    const RAMFS_MAGIC: u64 = 0x8584_58f6;
    nix::sys::statfs::fstatfs(file).is_ok_and(|fs| {
        let kind = fs.filesystem_type().0 as u64;
        kind == TMPFS_MAGIC || kind == RAMFS_MAGIC
    })
}

fn run<B: Buffer>(mode: Mode, work: impl FnOnce() -> Done<B> + Send + 'static) -> Pending<B> {
    match mode {
        Mode::Inline => Pending::Ready(work()),
        Mode::Background => Pending::Running(tokio::task::spawn_blocking(work)),
    }
}

/// Reads into all of `buf` from `offset`, stopping early only at end of
/// file or on an error. Yields the buffer and how many bytes were read.
/// In the background mode, what the page cache holds is read here and now
/// (a trip to the pool costs two thread switches per chunk); only the rest
/// goes to the pool.
pub(crate) fn read_at<B: Buffer>(
    mode: Mode,
    file: Arc<File>,
    mut buf: B,
    offset: u64,
) -> Pending<B> {
    let mut filled = 0;
    if mode == Mode::Background {
        match read_cached(&file, buf.as_mut(), offset) {
            Cached::Done(result) => return Pending::Ready((buf, result)),
            Cached::Partly(n) => filled = n,
        }
    }
    run(mode, move || {
        let bytes = buf.as_mut();
        while filled < bytes.len() {
            match file.read_at(&mut bytes[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (buf, Err(e)),
            }
        }
        (buf, Ok(filled))
    })
}

enum Cached {
    /// All read (or end of file, or a real error).
    Done(io::Result<usize>),
    /// This much read; the rest would block.
    Partly(usize),
}

/// Reads without waiting for the disk (preadv2 with RWF_NOWAIT).
fn read_cached(file: &File, buf: &mut [u8], offset: u64) -> Cached {
    use std::os::fd::AsRawFd;
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        let piece = libc::iovec {
            iov_base: rest.as_mut_ptr().cast(),
            iov_len: rest.len(),
        };
        let Ok(at) = libc::off_t::try_from(offset + filled as u64) else {
            return Cached::Partly(filled);
        };
        // SAFETY: the iovec points into `rest`, which outlives the call,
        // and the kernel writes at most `iov_len` bytes there.
        let n = unsafe { libc::preadv2(file.as_raw_fd(), &piece, 1, at, libc::RWF_NOWAIT) };
        match n {
            0 => return Cached::Done(Ok(filled)),
            n if n > 0 => filled += n as usize,
            _ => {
                let error = io::Error::last_os_error();
                match error.raw_os_error() {
                    Some(libc::EINTR) => {}
                    // Not cached, or not a file system that can tell.
                    Some(libc::EAGAIN | libc::EOPNOTSUPP | libc::EINVAL | libc::ENOSYS) => {
                        return Cached::Partly(filled);
                    }
                    _ => return Cached::Done(Err(error)),
                }
            }
        }
    }
    Cached::Done(Ok(filled))
}

/// Writes `buf[..len]` at `offset`.
pub(crate) fn write_at(
    mode: Mode,
    file: Arc<File>,
    buf: Vec<u8>,
    len: usize,
    offset: u64,
) -> Pending<Vec<u8>> {
    run(mode, move || {
        let result = file.write_all_at(&buf[..len], offset).map(|()| len);
        (buf, result)
    })
}

/// Writes `buf[..len]` where the file is now: for what cannot seek (a
/// pipe, a FIFO, a terminal), written in order, one write at a time.
pub(crate) fn write_next(
    mode: Mode,
    file: Arc<File>,
    buf: Vec<u8>,
    len: usize,
) -> Pending<Vec<u8>> {
    run(mode, move || {
        use std::io::Write;
        let result = (&*file).write_all(&buf[..len]).map(|()| len);
        (buf, result)
    })
}

/// A finished "read" of zeros, for the padding after a failed read.
pub(crate) fn zeros<B: Buffer>(mut buf: B) -> Pending<B> {
    buf.as_mut().fill(0);
    let len = buf.as_mut().len();
    Pending::Ready((buf, Ok(len)))
}

/// Waits for an operation. A pool task that died (it cannot panic, but the
/// runtime may be shutting down) loses its buffer; `fresh` replaces it.
pub(crate) async fn finish<B: Buffer>(pending: Pending<B>, fresh: impl FnOnce() -> B) -> Done<B> {
    match pending {
        Pending::Ready(done) => done,
        Pending::Running(handle) => match handle.await {
            Ok(done) => done,
            Err(e) => (fresh(), Err(io::Error::other(e))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(dir: &std::path::Path, data: &[u8]) -> Arc<File> {
        let path = dir.join("data");
        File::create(&path).unwrap().write_all(data).unwrap();
        Arc::new(File::open(&path).unwrap())
    }

    /// Every way of reading gives the same bytes: in place, through the
    /// page cache, through the pool, and short at the end of the file.
    #[tokio::test]
    async fn reads_are_whole_in_every_mode() {
        let data: Vec<u8> = (0..700_000u32).map(|i| (i * 7 % 251) as u8).collect();
        // The current directory is on a disk file system; the temp dir
        // may be tmpfs.
        let on_disk = tempfile::tempdir_in(".").unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        for dir in [on_disk.path(), elsewhere.path()] {
            let file = file_with(dir, &data);
            for mode in [Mode::Inline, Mode::Background] {
                let (buf, result) =
                    finish(read_at(mode, file.clone(), vec![0; 300_000], 1), Vec::new).await;
                assert_eq!(result.unwrap(), 300_000);
                assert_eq!(buf, data[1..300_001]);
                let (buf, result) = finish(
                    read_at(mode, file.clone(), vec![0; 300_000], 600_000),
                    Vec::new,
                )
                .await;
                assert_eq!(result.unwrap(), 100_000);
                assert_eq!(buf[..100_000], data[600_000..]);
            }
            let mut cached = vec![0; 300_000];
            match read_cached(&file, &mut cached, 1) {
                Cached::Done(result) => {
                    assert_eq!(result.unwrap(), 300_000);
                    assert_eq!(cached, data[1..300_001]);
                }
                Cached::Partly(n) => assert_eq!(cached[..n], data[1..n + 1]),
            }
        }
    }

    #[test]
    fn files_in_memory_are_done_in_place() {
        let shm = std::path::Path::new("/dev/shm");
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        if mounts.lines().any(|l| l.starts_with("tmpfs /dev/shm ")) {
            let dir = tempfile::tempdir_in(shm).unwrap();
            let file = file_with(dir.path(), b"x");
            assert_eq!(Mode::for_file(&file, 1 << 30), Mode::Inline);
        }
        let dir = tempfile::tempdir_in(".").unwrap();
        let file = file_with(dir.path(), b"x");
        if !in_memory(&file) {
            assert_eq!(Mode::for_file(&file, 1 << 30), Mode::Background);
        }
        assert_eq!(
            Mode::for_file(&file, super::super::CHUNK as u64),
            Mode::Inline
        );
    }
}
