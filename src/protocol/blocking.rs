//! File data I/O on tokio's blocking pool, so that disk and network overlap:
//! while one buffer is on its way to (or from) the disk, the other is on the
//! wire. Buffers are owned and handed back, never copied.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use tokio::task::JoinHandle;

pub(crate) type Pending = JoinHandle<(Vec<u8>, io::Result<usize>)>;

/// Reads into all of `buf` from `offset`, stopping early only at end of
/// file or on an error. Yields the buffer and how many bytes were read.
pub(crate) fn read_at(file: Arc<File>, mut buf: Vec<u8>, offset: u64) -> Pending {
    tokio::task::spawn_blocking(move || {
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
pub(crate) fn write_at(file: Arc<File>, buf: Vec<u8>, len: usize, offset: u64) -> Pending {
    tokio::task::spawn_blocking(move || {
        let result = file.write_all_at(&buf[..len], offset).map(|()| len);
        (buf, result)
    })
}

/// Waits for a pending operation. A task that died (it cannot panic, but the
/// runtime may be shutting down) loses its buffer; a fresh one replaces it.
pub(crate) async fn finish(pending: Pending, capacity: usize) -> (Vec<u8>, io::Result<usize>) {
    match pending.await {
        Ok(done) => done,
        Err(e) => (vec![0; capacity], Err(io::Error::other(e))),
    }
}
