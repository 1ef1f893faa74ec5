//! Writing what is received: files (written while the next chunk comes
//! off the wire, holes kept, in order where the target cannot seek), their
//! modes and times, and directories whose mode and times are set once
//! they are filled. Both engines' receiving ends use it; the order of the
//! steps is theirs.

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::stat::{UtimensatFlags, utimensat};
use nix::sys::time::TimeSpec;

use super::{CHUNK, blocking};
use crate::escape::{io_reason, path_for_terminal as shown};

/// Permission bits plus setuid, setgid and sticky: what `-p` restores.
pub const ALL_MODE_BITS: u32 = 0o7777;

/// Compared against to find runs of zeros, which a new file need not store.
static ZEROS: [u8; CHUNK] = [0; CHUNK];

/// Access and modification times to give a received file or directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Times {
    pub mtime: u64,
    pub mtime_usec: u32,
    pub atime: u64,
    pub atime_usec: u32,
}

/// A file being received.
pub struct Receiving {
    file: Arc<File>,
    shown: String,
    /// A regular file is written at offsets and gets size, mode and times;
    /// a pipe, FIFO or terminal is written in order and is left as it is.
    regular: bool,
    /// It did not exist before: runs of zeros can stay holes.
    new_file: bool,
    mode: blocking::Mode,
    offset: u64,
    in_flight: Option<blocking::Pending<Vec<u8>>>,
    /// The first write error; what follows is not written.
    failure: Option<String>,
}

impl Receiving {
    /// Opens (or creates, with `mode`'s permission bits under the umask,
    /// never setuid, setgid or sticky) the file at `path` to receive `size`
    /// bytes. Not truncated here: it may be the very file being sent (an
    /// in-place copy). The error is "path: why".
    pub fn open(path: &Path, mode: u32, size: u64) -> Result<Receiving, String> {
        let shown = shown(path);
        let new_file = fs::metadata(path).is_err();
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .mode(mode & 0o777)
            .open(path)
            .map_err(|e| format!("{shown}: {}", io_reason(&e)))?;
        let regular = file.metadata().is_ok_and(|m| m.is_file());
        // What cannot seek may also block (a full pipe): never in place.
        let mode = if regular {
            blocking::Mode::for_file(&file, size)
        } else {
            blocking::Mode::Background
        };
        Ok(Receiving {
            file: Arc::new(file),
            shown,
            regular,
            new_file,
            mode,
            offset: 0,
            in_flight: None,
            failure: None,
        })
    }

    /// A buffer to receive into (of [`CHUNK`] bytes).
    pub fn fresh_buffer() -> Vec<u8> {
        vec![0; CHUNK]
    }

    /// Writes `buf[..len]` next, after the write before it has finished
    /// (so that one chunk is on the disk while the next is received).
    /// Gives back a buffer that is free again.
    pub async fn write(&mut self, buf: Vec<u8>, len: usize) -> Option<Vec<u8>> {
        let freed = self.wait().await;
        let offset = self.offset;
        self.offset += len as u64;
        // A new file reads as zeros where nothing was written, so runs of
        // zeros are left as holes (sparse files stay sparse).
        let skip =
            self.failure.is_some() || (self.new_file && self.regular && buf[..len] == ZEROS[..len]);
        if skip {
            // Nothing written: a hole is only a hole up to the size, set
            // at the end.
            return freed.or(Some(buf));
        }
        let file = self.file.clone();
        self.in_flight = Some(if self.regular {
            blocking::write_at(self.mode, file, buf, len, offset)
        } else {
            blocking::write_next(self.mode, file, buf, len)
        });
        freed
    }

    async fn wait(&mut self) -> Option<Vec<u8>> {
        let pending = self.in_flight.take()?;
        let (done, result) = blocking::finish(pending, Receiving::fresh_buffer).await;
        if let Err(e) = result {
            self.failure.get_or_insert(io_reason(&e));
        }
        Some(done)
    }

    /// Waits for the last write. `Err("path: why")` if any write failed.
    pub async fn finish_writes(&mut self) -> (Option<Vec<u8>>, Result<(), String>) {
        let freed = self.wait().await;
        let result = match &self.failure {
            Some(why) => Err(format!("{}: {why}", self.shown)),
            None => Ok(()),
        };
        (freed, result)
    }

    /// Cuts or extends a regular file to `size` (the data may have been
    /// shorter than what was there, or ended in a hole).
    pub fn set_size(&self, size: u64) -> Result<(), String> {
        if !self.regular {
            return Ok(());
        }
        self.file
            .set_len(size)
            .map_err(|e| format!("{}: truncate: {}", self.shown, io_reason(&e)))
    }

    /// `-p`: the exact mode, setuid, setgid and sticky included.
    pub fn set_mode(&self, mode: u32) -> Result<(), String> {
        if !self.regular {
            return Ok(());
        }
        self.file
            .set_permissions(Permissions::from_mode(mode & ALL_MODE_BITS))
            .map_err(|e| format!("{}: set mode: {}", self.shown, io_reason(&e)))
    }

    /// `-p`: access and modification times.
    pub fn set_times(&self, times: Times) -> Result<(), String> {
        if !self.regular {
            return Ok(());
        }
        set_file_times(&self.file, times)
            .map_err(|e| format!("{}: set times: {}", self.shown, io_reason(&e)))
    }

    /// Whether a write failed (a file whose data is bad keeps its times).
    pub fn write_failed(&self) -> bool {
        self.failure.is_some()
    }
}

/// A directory being received: what to restore once it is filled.
pub struct ReceivedDirectory {
    pub path: PathBuf,
    mode: Option<u32>,
    times: Option<Times>,
}

impl ReceivedDirectory {
    /// Makes sure `path` is a directory to receive into: an existing one
    /// (its mode changed afterwards only with `preserve`), or a new one,
    /// owner-writable while it fills even if the original is read-only.
    /// The error is "path: why".
    pub fn enter(
        path: PathBuf,
        mode: u32,
        times: Option<Times>,
        preserve: bool,
        umask: u32,
    ) -> Result<ReceivedDirectory, String> {
        let final_mode = match fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => preserve.then_some(mode & ALL_MODE_BITS),
            Ok(_) => return Err(format!("{}: Not a directory", shown(&path))),
            Err(_) => {
                DirBuilder::new()
                    .mode((mode & 0o777) | 0o700)
                    .create(&path)
                    .map_err(|e| format!("{}: {}", shown(&path), io_reason(&e)))?;
                Some(if preserve {
                    mode & ALL_MODE_BITS
                } else {
                    mode & 0o777 & !umask
                })
            }
        };
        Ok(ReceivedDirectory {
            path,
            mode: final_mode,
            times,
        })
    }

    /// Its times and mode, now that it is filled (times first: setting
    /// them needs no write permission, but a mode may take it away).
    pub fn finish(self) -> Result<(), String> {
        let shown = shown(&self.path);
        let mut problem = None;
        if let Some(times) = self.times
            && let Err(e) = set_path_times(&self.path, times)
        {
            problem = Some(format!("{shown}: set times: {}", io_reason(&e)));
        }
        if let Some(mode) = self.mode
            && let Err(e) = fs::set_permissions(&self.path, Permissions::from_mode(mode))
        {
            problem.get_or_insert(format!("{shown}: set mode: {}", io_reason(&e)));
        }
        problem.map_or(Ok(()), Err)
    }
}

/// scp's `verifydir`: `Err("path: why")` unless `path` is a directory.
pub fn require_directory(path: &Path) -> Result<(), String> {
    let why = match fs::metadata(path) {
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => "Not a directory".to_owned(),
        Err(e) => io_reason(&e),
    };
    Err(format!("{}: {}", shown(path), why))
}

fn system_time(seconds: u64, micros: u32) -> Option<SystemTime> {
    let since = Duration::from_secs(seconds).checked_add(Duration::from_micros(micros.into()))?;
    UNIX_EPOCH.checked_add(since)
}

fn set_file_times(file: &File, times: Times) -> std::io::Result<()> {
    let (Some(modified), Some(accessed)) = (
        system_time(times.mtime, times.mtime_usec),
        system_time(times.atime, times.atime_usec),
    ) else {
        return Ok(());
    };
    file.set_times(
        fs::FileTimes::new()
            .set_modified(modified)
            .set_accessed(accessed),
    )
}

/// Directories get their times by path: they may not be readable.
fn set_path_times(path: &Path, times: Times) -> std::io::Result<()> {
    let spec = |seconds: u64, micros: u32| {
        TimeSpec::new(
            i64::try_from(seconds).unwrap_or(i64::MAX),
            i64::from(micros) * 1000,
        )
    };
    utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &spec(times.atime, times.atime_usec),
        &spec(times.mtime, times.mtime_usec),
        UtimensatFlags::FollowSymlink,
    )
    .map_err(std::io::Error::from)
}
