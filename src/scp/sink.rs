//! The receiving end: parses records, checks every name and size, writes
//! files. It trusts nothing the source sends.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncWrite};

use super::names::NameFilter;
use super::record::{Record, Times};
use super::wire::{Incoming, Reply, Wire};
use crate::engine::{SessionError, Summary};
use crate::events::{Events, FileId};
use crate::local::receive::{ReceivedDirectory, Receiving, require_directory};
use crate::local::{CHUNK, Pacer};

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
    /// The first `\0` went out already (the client sends it itself to see
    /// whether the remote scp runs at all).
    go_ahead_sent: bool,
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
            go_ahead_sent: false,
        }
    }

    /// For a stream whose first `\0` (the go-ahead) was already sent.
    pub fn after_go_ahead(mut self) -> Self {
        self.go_ahead_sent = true;
        self
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
        if !self.go_ahead_sent {
            self.wire.send_ok().await?;
        }
        let target_is_directory = fs::metadata(target).is_ok_and(|m| m.is_dir());
        let mut open_directories: Vec<ReceivedDirectory> = Vec::new();
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
                    let Some(directory) = open_directories.pop() else {
                        return Err(SessionError::Protocol(
                            "end of directory outside a directory".into(),
                        ));
                    };
                    match directory.finish() {
                        Ok(()) => self.wire.send_ok().await?,
                        Err(message) => self.reject(&message).await?,
                    }
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
                    let entered = ReceivedDirectory::enter(
                        path,
                        mode,
                        times,
                        self.options.preserve,
                        self.options.umask,
                    );
                    match entered {
                        Ok(directory) => {
                            self.wire.send_ok().await?;
                            open_directories.push(directory);
                        }
                        Err(message) => self.reject(&message).await?,
                    }
                }
            }
        }
    }

    /// Strict filename checking, for the names at the top of the transfer.
    fn check_requested(
        &self,
        open_directories: &[ReceivedDirectory],
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
        let mut file = match Receiving::open(path, mode, size) {
            Ok(file) => file,
            Err(message) => return self.reject(&message).await,
        };
        self.wire.send_ok().await?;

        let id = FileId::next();
        self.events.file_started(id, name, size);
        let received = self.receive_data(&mut file, id, size).await;
        self.events.file_finished(id);
        received?;
        // The first problem is the one reported, as scp does.
        let (freed, written) = file.finish_writes().await;
        self.buffers.extend(freed);
        let mut problem = written.err();
        if problem.is_none()
            && let Err(message) = file.set_size(size)
        {
            problem = Some(message);
        }
        if self.options.preserve
            && let Err(message) = file.set_mode(mode)
        {
            problem.get_or_insert(message);
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
            && !file.write_failed()
            && let Err(message) = file.set_times(times)
        {
            problem.get_or_insert(message);
        }
        drop(file);
        match problem {
            Some(message) => self.reject(&message).await,
            None => self.wire.send_ok().await,
        }
    }

    /// Reads `size` bytes of data into `file`, one chunk on the disk while
    /// the next comes off the wire. After a write error the rest is still
    /// read, to stay in step.
    async fn receive_data(
        &mut self,
        file: &mut Receiving,
        id: FileId,
        size: u64,
    ) -> Result<(), SessionError> {
        let mut offset = 0u64;
        // With -l, smaller reads, each followed by its pause.
        let most = self.pacer.as_ref().map_or(CHUNK, |p| p.piece(CHUNK));
        while offset < size {
            let len = (size - offset).min(most as u64) as usize;
            let mut buf = self.buffers.pop().unwrap_or_else(Receiving::fresh_buffer);
            let read = self.wire.read_data(&mut buf[..len]).await;
            if let Err(error) = read {
                // Whatever is being written still finishes.
                let (freed, _) = file.finish_writes().await;
                self.buffers.extend(freed);
                return Err(error);
            }
            self.events.file_progress(id, len as u64);
            if let Some(pacer) = self.pacer.as_mut() {
                pacer.moved(len as u64).await;
            }
            let freed = file.write(buf, len).await;
            self.buffers.extend(freed);
            offset += len as u64;
        }
        Ok(())
    }

    /// Refuses the current request: shown here, and sent as the one reply.
    async fn reject(&mut self, message: &str) -> Result<(), SessionError> {
        self.errors += 1;
        self.events.error(message);
        self.wire.send_error(message).await
    }
}

/// Where a received name goes: inside the directory being received, inside
/// the target directory, or (a single file) the target itself.
fn destination(
    target: &Path,
    target_is_directory: bool,
    open: &[ReceivedDirectory],
    name: &[u8],
) -> PathBuf {
    let name = Path::new(std::ffi::OsStr::from_bytes(name));
    match open.last() {
        Some(directory) => directory.path.join(name),
        None if target_is_directory => target.join(name),
        None => target.to_owned(),
    }
}
