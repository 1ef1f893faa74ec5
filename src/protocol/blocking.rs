//! File data I/O for the engine. A file of several chunks moves through
//! tokio's blocking pool, so that disk and network overlap: while one
//! buffer is on its way to (or from) the disk, the other is on the wire. A
//! file that fits in one chunk has nothing to overlap with, and a trip to
//! the pool costs more than the I/O itself, so it is done in place.
//! Buffers are owned and handed back, never copied.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use tokio::task::JoinHandle;

type Done = (Vec<u8>, io::Result<usize>);

/// An I/O operation on a buffer: finished already, or running in the pool.
pub(crate) enum Pending {
    Ready(Done),
    Running(JoinHandle<Done>),
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
    /// Overlap pays only for files of more than one chunk.
    pub fn for_size(size: u64) -> Mode {
        if size > super::CHUNK as u64 {
            Mode::Background
        } else {
            Mode::Inline
        }
    }
}

fn run(mode: Mode, work: impl FnOnce() -> Done + Send + 'static) -> Pending {
    match mode {
        Mode::Inline => Pending::Ready(work()),
        Mode::Background => Pending::Running(tokio::task::spawn_blocking(work)),
    }
}

/// Reads into all of `buf` from `offset`, stopping early only at end of
/// file or on an error. Yields the buffer and how many bytes were read.
pub(crate) fn read_at(mode: Mode, file: Arc<File>, mut buf: Vec<u8>, offset: u64) -> Pending {
    run(mode, move || {
        let mut filled = 0;
        while filled < buf.len() {
            match file.read_at(&mut buf[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (buf, Err(e)),
            }
        }
        (buf, Ok(filled))
    })
}

/// Writes `buf[..len]` at `offset`.
pub(crate) fn write_at(
    mode: Mode,
    file: Arc<File>,
    buf: Vec<u8>,
    len: usize,
    offset: u64,
) -> Pending {
    run(mode, move || {
        let result = file.write_all_at(&buf[..len], offset).map(|()| len);
        (buf, result)
    })
}

/// A finished "read" of zeros, for the padding after a failed read.
pub(crate) fn zeros(mut buf: Vec<u8>) -> Pending {
    buf.fill(0);
    let len = buf.len();
    Pending::Ready((buf, Ok(len)))
}

/// Waits for an operation. A pool task that died (it cannot panic, but the
/// runtime may be shutting down) loses its buffer; a fresh one replaces it.
pub(crate) async fn finish(pending: Pending, capacity: usize) -> Done {
    match pending {
        Pending::Ready(done) => done,
        Pending::Running(handle) => match handle.await {
            Ok(done) => done,
            Err(e) => (vec![0; capacity], Err(io::Error::other(e))),
        },
    }
}
