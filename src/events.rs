//! How an engine tells the outside world what happens: errors, the peer's
//! messages, `-v` lines and the progress of each file. Observers (the
//! progress meter, the reporter) implement [`Events`]; no engine depends on
//! them.

use std::sync::atomic::{AtomicU64, Ordering};

/// Which file an event is about: several may be in flight at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId(u64);

impl FileId {
    /// A name for a file that starts to move, unique in this process.
    pub fn next() -> FileId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        FileId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// Client mode prints errors and draws progress; server mode keeps quiet
/// (its peer is told).
pub trait Events: Sync {
    /// One of our own problems, worded "what: why"; shown as `rscp: ...`.
    fn error(&self, message: &str);
    /// A message the peer sent (`\x01`/`\x02` lines, or stray text), raw.
    fn peer_message(&self, message: &[u8]);
    /// Whether [`Events::debug`] lines are wanted (`-v`).
    fn verbose(&self) -> bool {
        false
    }
    /// A `-v` line, raw; shown with control characters escaped.
    fn debug(&self, _line: &[u8]) {}
    /// A file's data starts to move.
    fn file_started(&self, _file: FileId, _name: &[u8], _size: u64) {}
    /// More of that file has moved.
    fn file_progress(&self, _file: FileId, _bytes: u64) {}
    /// That file is done (or abandoned).
    fn file_finished(&self, _file: FileId) {}
    /// Whether progress is shown (so that totals are worth counting).
    fn shows_progress(&self) -> bool {
        false
    }
    /// Files and bytes the run will move, when known beforehand.
    fn expect(&self, _files: u64, _bytes: u64) {}
}

/// Events that go nowhere, for tests and quiet internal uses.
pub struct NoEvents;

impl Events for NoEvents {
    fn error(&self, _message: &str) {}
    fn peer_message(&self, _message: &[u8]) {}
}
