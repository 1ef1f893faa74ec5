//! The receiving end: parses records, checks every name and size, writes
//! files. It trusts nothing the source sends.

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::stat::{UtimensatFlags, utimensat};
use nix::sys::time::TimeSpec;
use tokio::io::{AsyncRead, AsyncWrite};

use super::names::NameFilter;
use super::record::{Record, Times};
use super::wire::{Incoming, Reply, Wire};
use crate::engine::{SessionError, Summary};
use crate::escape::{io_reason, path_for_terminal as shown};
use crate::events::{Events, FileId};
use crate::local::{CHUNK, Pacer, blocking};

/// Permission bits plus setuid, setgid and sticky: what `-p` restores.
const ALL_MODE_BITS: u32 = 0o7777;

/// Compared against to find runs of zeros, which a new file need not store.
static ZEROS: [u8; CHUNK] = [0; CHUNK];

#[derive(Debug, Clone, Default)]
pub struct SinkOptions {
    /// `-r`: directories may be received.
    pub recursive: bool,
    /// `-p`: modes and times are restored exactly.
    pub preserve: bool,
    /// `-d`: the target must be an existing directory.
    pub target_must_be_directory: bool,
    /// The process umask, for directories made writable while they fill.
    pub umask: u32,
    /// Strict filename checking of the top-level names (`None` with `-T`
    /// and for uploads, where the client chose the names).
    pub filter: Option<NameFilter>,
    /// `-l`, in bytes per second.
    pub limit: Option<u64>,
}

pub struct Sink<'e, R, W> {
    wire: Wire<R, W>,
    options: SinkOptions,
    events: &'e dyn Events,
    errors: u32,
    /// Free data buffers; two circulate while a file is received.
    buffers: Vec<Vec<u8>>,
    pacer: Option<Pacer>,
}

/// A directory being received: what to restore once its `E` arrives.
struct Frame {
    path: PathBuf,
    mode: Option<u32>,
    times: Option<Times>,
}

impl<'e, R, W> Sink<'e, R, W>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    pub fn new(reader: R, writer: W, options: SinkOptions, events: &'e dyn Events) -> Self {
        Sink {
            wire: Wire::new(reader, writer),
            events,
            errors: 0,
            buffers: Vec::new(),
            pacer: options.limit.map(Pacer::new),
            options,
        }
    }

    /// Receives everything the source sends into `target`, until the source
    /// ends the stream.
    pub async fn run(mut self, target: &Path) -> Result<Summary, SessionError> {
        match self.receive(target).await {
            Ok(()) => Ok(Summary {
                errors: self.errors,
            }),
            Err(error) => {
                if let SessionError::Protocol(_) = &error
                    && let Some(message) = error.message()
                {
                    self.wire.send_fatal(&message).await;
                }
                Err(error)
            }
        }
    }

    /// Refuses to start at all (scp's "ambiguous target").
    pub async fn refuse(mut self, message: &str) {
        self.events.error(message);
        self.wire.send_fatal(message).await;
    }

    async fn receive(&mut self, target: &Path) -> Result<(), SessionError> {
        if self.options.target_must_be_directory
            && let Err(message) = require_directory(target)
        {
            self.errors += 1;
            self.events.error(&message);
            self.wire.send_fatal(&message).await;
            return Err(SessionError::Refused);
        }
        self.wire.send_ok().await?;
        let target_is_directory = fs::metadata(target).is_ok_and(|m| m.is_dir());
        let mut open_directories: Vec<Frame> = Vec::new();
        // Some(..) once a `T` arrived; its times go to the next `C` or `D`.
        let mut pending_times: Option<Option<Times>> = None;
        let mut first = true;
        loop {
            let record = match self.wire.next_record(first, self.events, b"Sink: ").await? {
                // The end of the stream is only an orderly end between
                // top-level records.
                Incoming::End if open_directories.is_empty() && pending_times.is_none() => {
                    return Ok(());
                }
                Incoming::End => return Err(SessionError::LostConnection),
                Incoming::Warning(_) => {
                    self.errors += 1;
                    first = false;
                    continue;
                }
                Incoming::Record(record, _) => record,
            };
            first = false;
            match record {
                Record::Times(times) => {
                    pending_times = Some(times);
                    self.wire.send_ok().await?;
                }
                Record::End => {
                    let Some(frame) = open_directories.pop() else {
                        return Err(SessionError::Protocol(
                            "end of directory outside a directory".into(),
                        ));
                    };
                    self.leave_directory(frame).await?;
                }
                Record::File { mode, size, name } => {
                    self.check_requested(&open_directories, &name, false)?;
                    let path = destination(target, target_is_directory, &open_directories, &name);
                    let times = pending_times.take().flatten();
                    self.receive_file(&path, mode, size, &name, times).await?;
                }
                Record::Directory { mode, name } => {
                    if !self.options.recursive {
                        return Err(SessionError::Protocol(
                            "received directory without -r".into(),
                        ));
                    }
                    self.check_requested(&open_directories, &name, true)?;
                    let path = destination(target, target_is_directory, &open_directories, &name);
                    let times = pending_times.take().flatten();
                    if let Some(frame) = self.enter_directory(path, mode, times).await? {
                        open_directories.push(frame);
                    }
                }
            }
        }
    }

    /// Strict filename checking, for the names at the top of the transfer.
    fn check_requested(
        &self,
        open_directories: &[Frame],
        name: &[u8],
        directory: bool,
    ) -> Result<(), SessionError> {
        match &self.options.filter {
            Some(filter) if open_directories.is_empty() && !filter.allows(name, directory) => Err(
                SessionError::Protocol("filename does not match request".into()),
            ),
            _ => Ok(()),
        }
    }

    async fn receive_file(
        &mut self,
        path: &Path,
        mode: u32,
        size: u64,
        name: &[u8],
        times: Option<Times>,
    ) -> Result<(), SessionError> {
        let shown = shown(path);
        let existing = fs::metadata(path).ok();
        // Not truncated here: the file may be the very one being sent (an
        // in-place copy). Without -p, a new file gets the sent permission
        // bits under the umask, never setuid, setgid or sticky.
        let opened = OpenOptions::new()
            .write(true)
            .create(true)
            .mode(mode & 0o777)
            .open(path);
        let file = match opened {
            Ok(file) => Arc::new(file),
            Err(e) => return self.reject(&format!("{shown}: {}", io_reason(&e))).await,
        };
        // A pipe, FIFO or terminal is written in order; its mode and times
        // are not the peer's to set.
        let regular = file.metadata().is_ok_and(|m| m.is_file());
        self.wire.send_ok().await?;

        let id = FileId::next();
        self.events.file_started(id, name, size);
        let received = self
            .receive_data(&file, id, size, existing.is_none(), regular)
            .await;
        self.events.file_finished(id);
        // The first problem is the one reported, as scp does.
        let mut problem = received?.map(|why| format!("{shown}: {why}"));
        let write_failed = problem.is_some();
        if !write_failed
            && regular
            && let Err(e) = file.set_len(size)
        {
            problem.get_or_insert(format!("{shown}: truncate: {}", io_reason(&e)));
        }
        if self.options.preserve
            && regular
            && let Err(e) = file.set_permissions(Permissions::from_mode(mode & ALL_MODE_BITS))
        {
            problem.get_or_insert(format!("{shown}: set mode: {}", io_reason(&e)));
        }
        // The source's status byte: `\0`, or why its data is bad.
        match self.wire.read_reply().await? {
            Reply::Ok => {}
            Reply::Error(message) => {
                self.events.peer_message(&message);
                self.errors += 1;
            }
            Reply::Fatal(message) => {
                self.events.peer_message(&message);
                self.errors += 1;
                return Err(SessionError::PeerFailed);
            }
        }
        if let Some(times) = times
            && !write_failed
            && regular
            && let Err(e) = set_file_times(&file, times)
        {
            problem.get_or_insert(format!("{shown}: set times: {}", io_reason(&e)));
        }
        drop(file);
        match problem {
            Some(message) => self.reject(&message).await,
            None => self.wire.send_ok().await,
        }
    }

    /// Reads `size` bytes of data and writes them to `file`, one chunk on
    /// the disk while the next comes off the wire (at its offset in a
    /// `regular` file, else in order). After a write error the rest is
    /// still read, to stay in step; its reason is returned.
    async fn receive_data(
        &mut self,
        file: &Arc<File>,
        id: FileId,
        size: u64,
        new_file: bool,
        regular: bool,
    ) -> Result<Option<String>, SessionError> {
        // What cannot seek may also block (a full pipe): never in place.
        let mode = if regular {
            blocking::Mode::for_file(file, size)
        } else {
            blocking::Mode::Background
        };
        let mut in_flight: Option<blocking::Pending<Vec<u8>>> = None;
        let mut failure: Option<String> = None;
        let mut offset = 0u64;
        // With -l, smaller reads, each followed by its pause.
        let most = self.pacer.as_ref().map_or(CHUNK, |p| p.piece(CHUNK));
        while offset < size {
            let len = (size - offset).min(most as u64) as usize;
            let mut buf = self.buffers.pop().unwrap_or_else(|| vec![0; CHUNK]);
            let read = self.wire.read_data(&mut buf[..len]).await;
            if let Some(pending) = in_flight.take() {
                let (done, result) = blocking::finish(pending, || vec![0; CHUNK]).await;
                if let Err(e) = result {
                    failure.get_or_insert(io_reason(&e));
                }
                self.buffers.push(done);
            }
            read?;
            self.events.file_progress(id, len as u64);
            if let Some(pacer) = self.pacer.as_mut() {
                pacer.moved(len as u64).await;
            }
            // A new file reads as zeros where nothing was written, so runs
            // of zeros are left as holes (sparse files stay sparse).
            let skip = failure.is_some() || (new_file && buf[..len] == ZEROS[..len]);
            if skip {
                self.buffers.push(buf);
            } else if regular {
                in_flight = Some(blocking::write_at(mode, file.clone(), buf, len, offset));
            } else {
                in_flight = Some(blocking::write_next(mode, file.clone(), buf, len));
            }
            offset += len as u64;
        }
        if let Some(pending) = in_flight {
            let (done, result) = blocking::finish(pending, || vec![0; CHUNK]).await;
            if let Err(e) = result {
                failure.get_or_insert(io_reason(&e));
            }
            self.buffers.push(done);
        }
        Ok(failure)
    }

    async fn enter_directory(
        &mut self,
        path: PathBuf,
        mode: u32,
        times: Option<Times>,
    ) -> Result<Option<Frame>, SessionError> {
        let final_mode = match fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => self.options.preserve.then_some(mode & ALL_MODE_BITS),
            Ok(_) => {
                let message = format!("{}: Not a directory", shown(&path));
                self.reject(&message).await?;
                return Ok(None);
            }
            Err(_) => {
                // Owner access while it fills, even for a read-only original.
                let created = DirBuilder::new().mode((mode & 0o777) | 0o700).create(&path);
                if let Err(e) = created {
                    let message = format!("{}: {}", shown(&path), io_reason(&e));
                    self.reject(&message).await?;
                    return Ok(None);
                }
                Some(if self.options.preserve {
                    mode & ALL_MODE_BITS
                } else {
                    mode & 0o777 & !self.options.umask
                })
            }
        };
        self.wire.send_ok().await?;
        Ok(Some(Frame {
            path,
            mode: final_mode,
            times,
        }))
    }

    /// At a directory's `E`: its times and mode, now that it is filled.
    async fn leave_directory(&mut self, frame: Frame) -> Result<(), SessionError> {
        let shown = shown(&frame.path);
        let mut problem = None;
        if let Some(times) = frame.times
            && let Err(e) = set_path_times(&frame.path, times)
        {
            problem = Some(format!("{shown}: set times: {}", io_reason(&e)));
        }
        if let Some(mode) = frame.mode
            && let Err(e) = fs::set_permissions(&frame.path, Permissions::from_mode(mode))
        {
            problem.get_or_insert(format!("{shown}: set mode: {}", io_reason(&e)));
        }
        match problem {
            Some(message) => self.reject(&message).await,
            None => self.wire.send_ok().await,
        }
    }

    /// Refuses the current request: shown here, and sent as the one reply.
    async fn reject(&mut self, message: &str) -> Result<(), SessionError> {
        self.errors += 1;
        self.events.error(message);
        self.wire.send_error(message).await
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

/// Where a received name goes: inside the directory being received, inside
/// the target directory, or (a single file) the target itself.
fn destination(target: &Path, target_is_directory: bool, open: &[Frame], name: &[u8]) -> PathBuf {
    let name = Path::new(std::ffi::OsStr::from_bytes(name));
    match open.last() {
        Some(frame) => frame.path.join(name),
        None if target_is_directory => target.join(name),
        None => target.to_owned(),
    }
}

fn system_time(seconds: u64, micros: u32) -> Option<SystemTime> {
    UNIX_EPOCH.checked_add(Duration::new(seconds, micros * 1000))
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
    let spec = |seconds: u64, micros: u32| TimeSpec::new(seconds as i64, i64::from(micros) * 1000);
    utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &spec(times.atime, times.atime_usec),
        &spec(times.mtime, times.mtime_usec),
        UtimensatFlags::FollowSymlink,
    )
    .map_err(std::io::Error::from)
}
