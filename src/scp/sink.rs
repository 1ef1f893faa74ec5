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
    /// How many replies may be sent ahead of the requests they answer, so
    /// that the source need not wait a round trip for each (0: none).
    pub replies_ahead: usize,
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
    /// `\0`s sent for requests still to come (see `replies_ahead`).
    ahead: usize,
    /// Inside a directory that could not be made but whose contents come
    /// anyway (it was answered ahead): how deep; its contents are read and
    /// dropped.
    dropping: usize,
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
            ahead: 0,
            dropping: 0,
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
            self.top_up().await?;
            let record = match self.wire.next_record(first, self.events, b"Sink: ").await? {
                // The end of the stream is only an orderly end between
                // top-level records.
                Incoming::End
                    if open_directories.is_empty()
                        && self.dropping == 0
                        && pending_times.is_none() =>
                {
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
                    self.answer(None).await?;
                }
                Record::End if self.dropping > 0 => {
                    self.dropping -= 1;
                    self.answer(None).await?;
                }
                Record::End => {
                    let Some(directory) = open_directories.pop() else {
                        return Err(SessionError::Protocol(
                            "end of directory outside a directory".into(),
                        ));
                    };
                    let finished = directory.finish().err();
                    self.answer(finished.as_deref()).await?;
                }
                Record::File { mode, size, name } => {
                    self.check_requested(&open_directories, &name, false)?;
                    let times = pending_times.take().flatten();
                    if self.dropping > 0 {
                        self.answer(None).await?;
                        self.drop_data(size).await?;
                        continue;
                    }
                    let path = destination(target, target_is_directory, &open_directories, &name);
                    self.receive_file(&path, mode, size, &name, times).await?;
                }
                Record::Directory { mode, name } => {
                    if !self.options.recursive {
                        return Err(SessionError::Protocol(
                            "received directory without -r".into(),
                        ));
                    }
                    self.check_requested(&open_directories, &name, true)?;
                    let times = pending_times.take().flatten();
                    if self.dropping > 0 {
                        self.dropping += 1;
                        self.answer(None).await?;
                        continue;
                    }
                    let path = destination(target, target_is_directory, &open_directories, &name);
                    let entered = ReceivedDirectory::enter(
                        path,
                        mode,
                        times,
                        self.options.preserve,
                        self.options.umask,
                    );
                    match entered {
                        Ok(directory) => {
                            self.answer(None).await?;
                            open_directories.push(directory);
                        }
                        Err(message) => {
                            if self.answer(Some(&message)).await? {
                                self.dropping = 1;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Sends `\0`s ahead, up to `replies_ahead`, when fewer than half are
    /// left (one write for many).
    async fn top_up(&mut self) -> Result<(), SessionError> {
        let most = self.options.replies_ahead;
        if most > 0 && self.ahead <= most / 2 {
            self.wire.send(&vec![0; most - self.ahead]).await?;
            self.ahead = most;
        }
        Ok(())
    }

    /// Answers a request: `\0`, or why it was refused (shown here, and
    /// counted). A request answered ahead had its `\0` already: the source
    /// goes on as if it was accepted. True when what the request announced
    /// (a file's data, a directory's contents) still comes.
    async fn answer(&mut self, refusal: Option<&str>) -> Result<bool, SessionError> {
        if self.ahead > 0 {
            self.ahead -= 1;
            if let Some(message) = refusal {
                self.errors += 1;
                self.events.error(message);
            }
            return Ok(true);
        }
        match refusal {
            None => self.wire.send_ok().await?,
            Some(message) => self.reject(message).await?,
        }
        Ok(refusal.is_none())
    }

    /// A file's data that has nowhere to go, read to stay in step, and the
    /// source's status byte after it (answered).
    async fn drop_data(&mut self, size: u64) -> Result<(), SessionError> {
        let mut buf = self.buffers.pop().unwrap_or_else(Receiving::fresh_buffer);
        let mut left = size;
        let read = async {
            while left > 0 {
                let len = left.min(buf.len() as u64) as usize;
                self.wire.read_data(&mut buf[..len]).await?;
                left -= len as u64;
            }
            Ok::<(), SessionError>(())
        }
        .await;
        self.buffers.push(buf);
        read?;
        self.source_status().await?;
        self.answer(None).await?;
        Ok(())
    }

    /// The source's status byte after a file's data: `\0`, or why its data
    /// is bad (shown and counted).
    async fn source_status(&mut self) -> Result<(), SessionError> {
        match self.wire.read_reply().await? {
            Reply::Ok => Ok(()),
            Reply::Error(message) => {
                self.events.peer_message(&message);
                self.errors += 1;
                Ok(())
            }
            Reply::Fatal(message) => {
                self.events.peer_message(&message);
                self.errors += 1;
                Err(SessionError::PeerFailed)
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
        // (Inside a directory being dropped, names are not top-level.)
        let top_level = open_directories.is_empty() && self.dropping == 0;
        match &self.options.filter {
            Some(filter) if top_level && !filter.allows(name, directory) => Err(
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
            Err(message) => {
                if self.answer(Some(&message)).await? {
                    self.drop_data(size).await?;
                }
                return Ok(());
            }
        };
        self.answer(None).await?;

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
        self.source_status().await?;
        if let Some(times) = times
            && !file.write_failed()
            && let Err(message) = file.set_times(times)
        {
            problem.get_or_insert(message);
        }
        drop(file);
        self.answer(problem.as_deref()).await?;
        Ok(())
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
