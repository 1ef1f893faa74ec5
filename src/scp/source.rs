//! The sending end: walks local paths, sends records and data, reads replies.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncRead;

use super::record;
use super::wire::{Reply, Wire};
use crate::engine::{DataWrite, Destination, Refusal, SessionError, Summary, Times};
use crate::escape::{io_reason, path_for_terminal as shown};
use crate::events::{Events, FileId};
use crate::local::walk::{Directory, Step, Walk, last_component};
use crate::local::{CHUNK, Pacer, blocking};

#[derive(Debug, Clone, Copy, Default)]
pub struct SourceOptions {
    /// `-r`: send directories and their contents.
    pub recursive: bool,
    /// `-p`: send times before each file and directory.
    pub preserve: bool,
    /// `-l`, in bytes per second.
    pub limit: Option<u64>,
}

pub struct Source<'e, R, W> {
    wire: Wire<R, W>,
    options: SourceOptions,
    events: &'e dyn Events,
    errors: u32,
    /// Two buffers, so that one is read from disk while the other is sent.
    buffers: [BytesMut; 2],
    /// Buffers handed to a writer that takes them whole, newest last; each
    /// is used again once the writer has let go of it.
    handed_over: VecDeque<Bytes>,
    pacer: Option<Pacer>,
    /// `-3` into this sink: the bytes the file being passed on still
    /// needs.
    relayed_left: u64,
    /// Replies to files' data and `T` records not read yet: the next
    /// record goes out without waiting for them (they come in order,
    /// before its own).
    replies_owed: usize,
}

impl<'e, R, W> Source<'e, R, W>
where
    R: AsyncRead + Unpin,
    W: DataWrite,
{
    pub fn new(reader: R, writer: W, options: SourceOptions, events: &'e dyn Events) -> Self {
        Source {
            wire: Wire::new(reader, writer),
            options,
            events,
            errors: 0,
            buffers: [BytesMut::new(), BytesMut::new()],
            handed_over: VecDeque::new(),
            pacer: options.limit.map(Pacer::new),
            relayed_left: 0,
            replies_owed: 0,
        }
    }

    /// Waits for the sink's go-ahead (its first `\0`).
    pub async fn start(&mut self) -> Result<(), SessionError> {
        if self.expect_ok().await? {
            Ok(())
        } else {
            // The sink refused to start (for example, its target is not a
            // directory); scp gives up at this point too.
            Err(SessionError::PeerFailed)
        }
    }

    /// Sends one operand: a file, or with `-r` a directory tree. Problems
    /// with single files are reported and counted; only a broken session
    /// is an error.
    pub async fn send(&mut self, path: &Path) -> Result<(), SessionError> {
        let mut walk = Walk::new(path, self.options.recursive);
        while let Some(step) = walk.next() {
            match step {
                Step::File { path, file, meta } => self.send_file(&path, file, &meta).await?,
                Step::Directory(directory) => {
                    if self.send_directory(&directory).await? {
                        walk.enter(directory);
                    }
                }
                Step::Leave => self.send_end().await?,
                Step::Problem(message) => self.fail(&message).await?,
            }
        }
        Ok(())
    }

    /// Ends the session from our side and waits for the peer to finish.
    pub async fn close(mut self) -> Result<Summary, SessionError> {
        self.settle().await?;
        let (mut errors, events) = (self.errors, self.events);
        if let Some(message) = self.wire.finish().await? {
            events.peer_message(&message);
            errors += 1;
        }
        Ok(Summary { errors })
    }

    /// Tells the peer why the session ends, for a server (whose only
    /// audience is its peer): a protocol error goes as a fatal message.
    pub async fn abort(&mut self, error: &SessionError) {
        if let SessionError::Protocol(_) = error
            && let Some(message) = error.message()
        {
            self.wire.send_fatal(&message).await;
        }
    }

    /// One step of a walk the caller drives (for uploads spread over
    /// several channels): a directory's records (true when the sink took
    /// it), the end of one, a file, or a problem with one.
    pub async fn send_walk_directory(
        &mut self,
        directory: &Directory,
    ) -> Result<bool, SessionError> {
        self.send_directory(directory).await
    }

    pub async fn send_walk_end(&mut self) -> Result<(), SessionError> {
        self.send_end().await
    }

    pub async fn send_walk_file(
        &mut self,
        path: &Path,
        file: File,
        meta: &fs::Metadata,
    ) -> Result<(), SessionError> {
        self.send_file(path, file, meta).await
    }

    pub async fn send_walk_problem(&mut self, message: &str) -> Result<(), SessionError> {
        self.fail(message).await
    }

    /// Goes into a directory that exists already at the sink (made by
    /// another channel): a `D` record with no times. False if refused.
    pub async fn enter_existing(&mut self, name: &[u8], mode: u32) -> Result<bool, SessionError> {
        let line = record::directory_line(mode, name);
        self.debug(b"Entering directory: ", &line);
        self.send_record(&line).await?;
        self.expect_ok().await
    }

    /// Reads the replies still owed, for files' data and `T` records
    /// (each error shown and counted).
    pub async fn settle(&mut self) -> Result<(), SessionError> {
        while self.replies_owed > 0 {
            self.replies_owed -= 1;
            let reply = self.wire.read_reply().await?;
            if let Reply::Error(message) | Reply::Fatal(message) = &reply {
                self.events.peer_message(message);
                self.errors += 1;
            }
            if let Reply::Fatal(_) = reply {
                return Err(SessionError::PeerFailed);
            }
        }
        Ok(())
    }

    /// Whether replies are owed (the last file's data not answered yet).
    pub fn owes_replies(&self) -> bool {
        self.replies_owed > 0
    }

    /// A problem reported by the caller, counted with the session's own.
    pub fn count_problem(&mut self) {
        self.errors += 1;
    }

    /// The counts so far, for a server that ends by exiting.
    pub fn summary(&self) -> Summary {
        Summary {
            errors: self.errors,
        }
    }

    /// A directory's `T` (with `-p`) and `D` records; true when the sink
    /// accepted it, so that its contents follow.
    async fn send_directory(&mut self, directory: &Directory) -> Result<bool, SessionError> {
        // A directory's `T` is answered first: refused, the whole tree is
        // skipped, as scp does (a few round trips for a whole tree).
        if self.options.preserve {
            let meta = &directory.meta;
            let refused = self.send_times_of(meta.mtime(), meta.atime()).await?;
            if refused.is_some() {
                return Ok(false);
            }
        }
        let line = record::directory_line(directory.meta.mode(), &directory.name());
        self.debug(b"Entering directory: ", &line);
        self.send_record(&line).await?;
        self.expect_ok().await
    }

    async fn send_file(
        &mut self,
        path: &Path,
        file: File,
        meta: &fs::Metadata,
    ) -> Result<(), SessionError> {
        if self.options.preserve {
            self.send_times(meta).await?;
        }
        let size = meta.len();
        let name = last_component(path);
        let line = record::file_line(meta.mode(), size, name);
        self.debug(b"Sending file modes: ", &line);
        self.send_record(&line).await?;
        if !self.expect_ok().await? {
            return Ok(());
        }
        let id = FileId::next();
        self.events.file_started(id, name, size);
        let sent = self.send_data(Arc::new(file), id, size).await;
        self.events.file_finished(id);
        if let Some(reason) = sent? {
            // The data was padded to keep the stream in step; the sink is
            // told the file is bad instead of being sent the `\0`.
            self.fail(&format!("{}: {}", shown(path), reason)).await?;
        }
        // Its reply is read before the next one (the sink answers in order).
        self.replies_owed += 1;
        Ok(())
    }

    /// Sends `size` bytes of `file`, then (if all went well) the `\0` that
    /// ends them. If the file cannot be read to the end (it shrank, or a
    /// read failed), zeros take the place of the rest and the reason is
    /// returned.
    async fn send_data(
        &mut self,
        file: Arc<File>,
        id: FileId,
        size: u64,
    ) -> Result<Option<String>, SessionError> {
        if size == 0 {
            self.wire.send_ok().await?;
            return Ok(None);
        }
        let mode = blocking::Mode::for_file(&file, size);
        // Handing buffers over saves a copy; with -l, pieces go out paced.
        let hand_over = self.wire.takes_owned() && self.pacer.is_none();
        let (first, mut spare) = if hand_over {
            (self.reusable_buffer(), BytesMut::new())
        } else {
            let [first, spare] = std::mem::take(&mut self.buffers).map(with_capacity);
            (first, spare)
        };
        let mut next = Some(blocking::read_at(
            mode,
            file.clone(),
            sized(first, chunk_len(size, 0)),
            0,
        ));
        let mut sent = 0u64;
        let mut failure: Option<String> = None;
        while let Some(pending) = next.take() {
            let (mut buf, result) = blocking::finish(pending, fresh_buffer).await;
            let read = result.unwrap_or_else(|e| {
                failure.get_or_insert(io_reason(&e));
                0
            });
            if read < buf.len() {
                failure.get_or_insert_with(|| "file shrank while being read".into());
                buf[read..].fill(0);
            }
            let len = buf.len();
            sent += len as u64;
            // Start on the next chunk before this one goes out.
            if sent < size {
                if hand_over {
                    spare = self.reusable_buffer();
                }
                let following = sized(std::mem::take(&mut spare), chunk_len(size, sent));
                next = Some(match failure {
                    None => blocking::read_at(mode, file.clone(), following, sent),
                    Some(_) => blocking::zeros(following),
                });
            } else if failure.is_none() {
                // The `\0` after the data travels with the last chunk.
                buf.extend_from_slice(&[0]);
            }
            if hand_over {
                let data = buf.freeze();
                self.handed_over.push_back(data.clone());
                self.wire.write_owned(data).await?;
                self.events.file_progress(id, len as u64);
            } else {
                let written = self.write_paced(&buf, id, len).await;
                buf.truncate(len);
                written?;
                if next.is_some() {
                    spare = buf;
                } else {
                    self.buffers = [buf, std::mem::take(&mut spare)];
                }
            }
        }
        if failure.is_none() {
            self.wire.flush().await?;
        }
        Ok(failure)
    }

    /// A buffer for the next chunk: one the writer has let go of, or a new
    /// one. Of the buffers it still holds, the newest few are remembered.
    fn reusable_buffer(&mut self) -> BytesMut {
        const KEPT: usize = 16;
        let released = self.handed_over.iter().position(Bytes::is_unique);
        // Its old bytes stay: the next read overwrites them, and clearing
        // would mean zeroing it all again.
        if let Some(Ok(buffer)) = released
            .and_then(|i| self.handed_over.remove(i))
            .map(Bytes::try_into_mut)
        {
            return with_capacity(buffer);
        }
        if self.handed_over.len() > KEPT {
            self.handed_over.pop_front();
        }
        fresh_buffer()
    }

    /// Writes a chunk (`len` data bytes, perhaps followed by the status
    /// byte), reporting progress, at the `-l` pace if there is one.
    async fn write_paced(
        &mut self,
        buf: &[u8],
        id: FileId,
        len: usize,
    ) -> Result<(), SessionError> {
        let piece = self
            .pacer
            .as_ref()
            .map_or(buf.len().max(1), |p| p.piece(CHUNK));
        let mut offset = 0;
        for part in buf.chunks(piece) {
            self.wire.write_data(part).await?;
            let data = part.len().min(len.saturating_sub(offset));
            self.events.file_progress(id, data as u64);
            offset += part.len();
            if let Some(pacer) = self.pacer.as_mut() {
                pacer.moved(part.len() as u64).await;
            }
        }
        Ok(())
    }

    /// `T` record for `meta`, its answer read with the next one's: a sink
    /// refuses `T` only by ending, so what follows need not wait for it.
    async fn send_times(&mut self, meta: &fs::Metadata) -> Result<(), SessionError> {
        self.send_times_line(meta.mtime(), meta.atime()).await?;
        self.replies_owed += 1;
        Ok(())
    }

    /// `T` record, answered before anything else is sent (for a relayed
    /// entry, or a directory).
    async fn send_times_of(&mut self, mtime: i64, atime: i64) -> Result<Refusal, SessionError> {
        self.send_times_line(mtime, atime).await?;
        self.expect_answer().await
    }

    async fn send_times_line(&mut self, mtime: i64, atime: i64) -> Result<(), SessionError> {
        let line = record::times_line(mtime, atime);
        if self.events.verbose() {
            let text = format!("File mtime {mtime} atime {atime}\n");
            self.events.debug(text.as_bytes());
            self.debug(b"Sending file timestamps: ", &line);
        }
        self.send_record(&line).await
    }

    async fn send_end(&mut self) -> Result<(), SessionError> {
        self.send_record(record::END_LINE).await?;
        self.expect_ok().await?;
        Ok(())
    }

    /// Sends a record, first making sure the sink has not complained
    /// unasked. (`\0`s waiting are answers sent ahead, which a sink may do
    /// so that we need not wait for each: they answer what comes next.)
    async fn send_record(&mut self, line: &[u8]) -> Result<(), SessionError> {
        // (What waits while replies are owed is theirs.)
        if self.replies_owed == 0 && self.wire.peek().is_some_and(|byte| byte != 0) {
            return match self.wire.read_reply().await? {
                Reply::Ok => Err(SessionError::Protocol("unexpected reply".into())),
                Reply::Error(message) | Reply::Fatal(message) => {
                    self.events.peer_message(&message);
                    self.errors += 1;
                    Err(SessionError::PeerFailed)
                }
            };
        }
        self.wire.send(line).await
    }

    /// Reads a reply: true for `\0`; false (after showing the message) for
    /// an error that ends this file only.
    async fn expect_ok(&mut self) -> Result<bool, SessionError> {
        Ok(self.expect_answer().await?.is_none())
    }

    /// [`Source::expect_ok`], with the sink's reason when it refused.
    async fn expect_answer(&mut self) -> Result<Refusal, SessionError> {
        self.settle().await?;
        let reply = self.wire.read_reply().await?;
        if let Reply::Error(message) | Reply::Fatal(message) = &reply {
            self.events.peer_message(message);
            self.errors += 1;
        }
        match reply {
            Reply::Ok => Ok(None),
            Reply::Error(message) => Ok(Some(String::from_utf8_lossy(&message).into_owned())),
            Reply::Fatal(_) => Err(SessionError::PeerFailed),
        }
    }

    /// Reports a problem of ours: shown here, and sent to the sink as
    /// `\x01` (which is what scp's `run_err` does).
    async fn fail(&mut self, message: &str) -> Result<(), SessionError> {
        self.errors += 1;
        self.events.error(message);
        self.wire.send_error(message).await
    }

    fn debug(&self, prefix: &[u8], line: &[u8]) {
        if self.events.verbose() {
            let mut text = prefix.to_vec();
            text.extend_from_slice(line);
            self.events.debug(&text);
        }
    }
}

/// `-3` from an SFTP origin into a remote `scp -t`: the origin's tree
/// sent as records, as a local tree would be.
impl<R, W> Destination for Source<'_, R, W>
where
    R: AsyncRead + Unpin,
    W: DataWrite,
{
    async fn enter_directory(
        &mut self,
        name: &[u8],
        mode: u32,
        times: Option<Times>,
    ) -> Result<Refusal, SessionError> {
        if let Some(why) = self.send_relayed_times(times).await? {
            return Ok(Some(why));
        }
        let line = record::directory_line(mode, name);
        self.debug(b"Entering directory: ", &line);
        self.send_record(&line).await?;
        self.expect_answer().await
    }

    async fn leave_directory(&mut self) -> Result<Refusal, SessionError> {
        self.send_record(record::END_LINE).await?;
        self.expect_answer().await
    }

    async fn begin_file(
        &mut self,
        name: &[u8],
        mode: u32,
        size: u64,
        times: Option<Times>,
    ) -> Result<Refusal, SessionError> {
        if let Some(why) = self.send_relayed_times(times).await? {
            return Ok(Some(why));
        }
        let line = record::file_line(mode, size, name);
        self.debug(b"Sending file modes: ", &line);
        self.send_record(&line).await?;
        let answer = self.expect_answer().await?;
        self.relayed_left = if answer.is_none() { size } else { 0 };
        Ok(answer)
    }

    fn needs_size(&self) -> bool {
        true
    }

    fn room(&self) -> Option<u64> {
        Some(self.relayed_left)
    }

    async fn file_data(&mut self, data: &[u8]) -> Result<(), SessionError> {
        // The record promised a size: what goes past it is not sent.
        let take = data
            .len()
            .min(usize::try_from(self.relayed_left).unwrap_or(usize::MAX));
        self.wire.write_data(&data[..take]).await?;
        self.relayed_left -= take as u64;
        Ok(())
    }

    async fn end_file(&mut self, failure: Option<&str>) -> Result<Refusal, SessionError> {
        // Short of its size: zeros keep the stream in step, and the sink
        // is told the file is bad. Not many: the size came from a server,
        // which must not have rscp write zeros without end.
        if self.relayed_left > MAX_PADDING {
            return Err(SessionError::Protocol(format!(
                "the origin's file ended {} bytes short of its size",
                self.relayed_left
            )));
        }
        let short = self.relayed_left > 0;
        let zeros = vec![0u8; CHUNK.min(usize::try_from(self.relayed_left).unwrap_or(CHUNK))];
        while self.relayed_left > 0 {
            let len = zeros
                .len()
                .min(usize::try_from(self.relayed_left).unwrap_or(CHUNK));
            self.wire.write_data(&zeros[..len]).await?;
            self.relayed_left -= len as u64;
        }
        match failure {
            Some(why) => self.wire.send_error(why).await?,
            None if short => self.wire.send_error("file shrank while being read").await?,
            None => self.wire.send_ok().await?,
        }
        self.expect_answer().await
    }
}

impl<R, W> Source<'_, R, W>
where
    R: AsyncRead + Unpin,
    W: DataWrite,
{
    /// The `T` record for a relayed entry, if the origin gave times.
    async fn send_relayed_times(&mut self, times: Option<Times>) -> Result<Refusal, SessionError> {
        match times {
            Some(times) => {
                self.send_times_of(seconds(times.mtime), seconds(times.atime))
                    .await
            }
            None => Ok(None),
        }
    }
}

/// The most zeros sent for a relayed file that came up short.
const MAX_PADDING: u64 = 64 * 1024 * 1024;

/// A time as a `T` record holds it.
fn seconds(time: u64) -> i64 {
    i64::try_from(time).unwrap_or(i64::MAX)
}

fn chunk_len(size: u64, sent: u64) -> usize {
    (size - sent).min(CHUNK as u64) as usize
}

/// Room for a chunk and the status byte that may follow it.
fn with_capacity(buf: BytesMut) -> BytesMut {
    if buf.capacity() < CHUNK + 1 {
        fresh_buffer()
    } else {
        buf
    }
}

fn fresh_buffer() -> BytesMut {
    BytesMut::with_capacity(CHUNK + 1)
}

fn sized(mut buf: BytesMut, len: usize) -> BytesMut {
    buf.resize(len, 0);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes buffers whole, as an SSH channel does, and lets
    /// go of them at once, so that the source reuses each. The first time
    /// it takes one, it runs `on_first`.
    struct TakingWriter {
        taken: Arc<std::sync::Mutex<Vec<u8>>>,
        on_first: Option<Box<dyn FnOnce() + Send>>,
    }

    impl tokio::io::AsyncWrite for TakingWriter {
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            self.taken.lock().unwrap().extend_from_slice(buf);
            std::task::Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    impl DataWrite for TakingWriter {
        fn takes_owned(&self) -> bool {
            true
        }
        fn send_owned(mut self: std::pin::Pin<&mut Self>, data: Bytes) -> Result<(), Bytes> {
            self.taken.lock().unwrap().extend_from_slice(&data);
            if let Some(on_first) = self.on_first.take() {
                on_first();
            }
            Ok(())
        }
    }

    /// Replies given one byte per read, as a sink answering each request.
    struct OneAtATime(&'static [u8]);

    impl AsyncRead for OneAtATime {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            if let Some((&first, rest)) = self.0.split_first() {
                buf.put_slice(&[first]);
                self.0 = rest;
            }
            std::task::Poll::Ready(Ok(()))
        }
    }

    /// Buffers handed over come back with their old bytes; a file that
    /// shrinks meanwhile must still be padded with zeros, not with them.
    #[tokio::test]
    async fn reused_buffers_do_not_leak_old_data_into_a_shrunk_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shrinking");
        let size = 3 * CHUNK + 10;
        let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8 + 1).collect();
        fs::write(&path, &data).unwrap();
        let truncate = path.clone();
        let taken = Arc::new(std::sync::Mutex::new(Vec::new()));
        let writer = TakingWriter {
            taken: taken.clone(),
            on_first: Some(Box::new(move || {
                let file = fs::OpenOptions::new().write(true).open(truncate).unwrap();
                file.set_len(CHUNK as u64 + 5).unwrap();
            })),
        };
        let mut source = Source::new(
            OneAtATime(b"\0\0\0"),
            writer,
            SourceOptions::default(),
            &crate::events::NoEvents,
        );
        source.start().await.unwrap();
        source.send(&path).await.unwrap();
        assert_eq!(source.summary().errors, 1);
        drop(source);

        let header = format!("C0644 {size} shrinking\n");
        let taken = taken.lock().unwrap();
        assert!(taken.starts_with(header.as_bytes()));
        let sent = &taken[header.len()..header.len() + size];
        assert_eq!(sent[..CHUNK], data[..CHUNK]);
        // The second chunk was read before or after the cut.
        let second = &sent[CHUNK..2 * CHUNK];
        assert!(second == &data[CHUNK..2 * CHUNK] || second[5..].iter().all(|&b| b == 0));
        assert!(sent[2 * CHUNK..].iter().all(|&b| b == 0));
        // Then the error instead of the `\0`.
        let rest = &taken[header.len() + size..];
        assert!(rest.starts_with(b"\x01rscp: "), "{rest:?}");
        assert!(String::from_utf8_lossy(rest).contains("file shrank while being read"));
    }

    /// `-3` into a remote `scp -t`: the record's size is what is sent,
    /// whatever the origin's file turned out to hold.
    #[tokio::test]
    async fn relayed_files_are_sent_at_the_size_their_record_promised() {
        let taken = Arc::new(std::sync::Mutex::new(Vec::new()));
        let writer = TakingWriter {
            taken: taken.clone(),
            on_first: None,
        };
        let mut source = Source::new(
            OneAtATime(b"\0\0\0\0\0"),
            writer,
            SourceOptions::default(),
            &crate::events::NoEvents,
        );
        source.start().await.unwrap();
        assert_eq!(source.begin_file(b"short", 0o644, 5, None).await, Ok(None));
        source.file_data(b"abc").await.unwrap();
        assert_eq!(source.room(), Some(2));
        assert_eq!(source.end_file(None).await, Ok(None));
        assert_eq!(source.begin_file(b"long", 0o600, 2, None).await, Ok(None));
        source.file_data(b"xyz").await.unwrap();
        assert_eq!(source.room(), Some(0));
        assert_eq!(source.end_file(None).await, Ok(None));
        drop(source);
        let taken = taken.lock().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&taken),
            "C0644 5 short\nabc\0\0\x01rscp: file shrank while being read\nC0600 2 long\nxy\0"
        );
    }
}
