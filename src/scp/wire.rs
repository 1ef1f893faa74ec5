//! Framing shared by both ends: bounded control lines, one-byte replies,
//! raw data.

use std::pin::Pin;

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use super::record::{self, Record};
use super::{MAX_LINE, PEER_PREFIX};
use crate::engine::{DataWrite, SessionError};
use crate::escape::for_terminal;
use crate::events::Events;

/// Buffer for control lines; data reads larger than this bypass it.
const READ_BUFFER: usize = 64 * 1024;

/// A reply to a record, or the status byte after a file's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    Ok,
    /// `\x01message`: this file failed, the run goes on.
    Error(Vec<u8>),
    /// `\x02message`, or text where a reply byte was due: the peer gave up.
    Fatal(Vec<u8>),
}

/// What a source sends next, as a sink reads it.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// The end of the stream, between records.
    End,
    /// A `\x01` line (already shown): an error on the source's side; the
    /// run goes on. The whole line, to pass it on.
    Warning(Vec<u8>),
    /// A well-formed record, and its line (without the newline).
    Record(Record, Vec<u8>),
}

pub(crate) struct Wire<R, W> {
    reader: BufReader<R>,
    writer: W,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Wire<R, W> {
    pub fn new(reader: R, writer: W) -> Self {
        Wire {
            reader: BufReader::with_capacity(READ_BUFFER, reader),
            writer,
        }
    }

    /// The next byte, if one has been read in already.
    pub fn peek(&self) -> Option<u8> {
        self.reader.buffer().first().copied()
    }

    /// Reads one line, without its newline. `None` at end of stream before
    /// any byte; a line cut off by the end of stream is a lost connection.
    pub async fn read_line(&mut self) -> Result<Option<Vec<u8>>, SessionError> {
        let mut line = Vec::new();
        loop {
            let available = self
                .reader
                .fill_buf()
                .await
                .map_err(|_| SessionError::LostConnection)?;
            if available.is_empty() {
                return if line.is_empty() {
                    Ok(None)
                } else {
                    Err(SessionError::LostConnection)
                };
            }
            let (taken, done) = match available.iter().position(|&b| b == b'\n') {
                Some(newline) => (newline, true),
                None => (available.len(), false),
            };
            if line.len() + taken >= MAX_LINE {
                return Err(SessionError::Protocol("control record too long".into()));
            }
            line.extend_from_slice(&available[..taken]);
            self.reader.consume(taken + usize::from(done));
            if done {
                return Ok(Some(line));
            }
        }
    }

    /// Reads the next record as a sink does. `first` is whether it is the
    /// first line of the session: text there comes from the remote shell
    /// before scp ran ("No match."), is shown and ends the session. A
    /// `\x02` line is shown and ends it too; a malformed record is a
    /// protocol error. `tag` prefixes the `-v` echo ("Sink: ").
    pub async fn next_record(
        &mut self,
        first: bool,
        events: &dyn Events,
        tag: &[u8],
    ) -> Result<Incoming, SessionError> {
        let Some(line) = self.read_line().await? else {
            return Ok(Incoming::End);
        };
        if events.verbose() {
            let mut text = tag.to_vec();
            text.extend_from_slice(&line);
            text.push(b'\n');
            events.debug(&text);
        }
        if let Some(&kind @ (1 | 2)) = line.first() {
            events.peer_message(&line[1..]);
            if kind == 2 {
                return Err(SessionError::PeerFailed);
            }
            return Ok(Incoming::Warning(line));
        }
        match record::parse(&line) {
            Ok(record) => Ok(Incoming::Record(record, line)),
            Err(_) if first && !matches!(line.first(), Some(b'T' | b'C' | b'D' | b'E')) => {
                events.peer_message(&line);
                Err(SessionError::PeerFailed)
            }
            Err(why) => Err(SessionError::Protocol(why)),
        }
    }

    /// Reads the reply to a request.
    pub async fn read_reply(&mut self) -> Result<Reply, SessionError> {
        let mut first = [0u8; 1];
        if self.reader.read(&mut first).await.unwrap_or(0) == 0 {
            return Err(SessionError::LostConnection);
        }
        if first[0] == 0 {
            return Ok(Reply::Ok);
        }
        let rest = self
            .read_line()
            .await?
            .ok_or(SessionError::LostConnection)?;
        Ok(match first[0] {
            1 => Reply::Error(rest),
            2 => Reply::Fatal(rest),
            other => {
                let mut text = vec![other];
                text.extend_from_slice(&rest);
                Reply::Fatal(text)
            }
        })
    }

    /// Fills `buf` with file data from the stream.
    pub async fn read_data(&mut self, buf: &mut [u8]) -> Result<(), SessionError> {
        self.reader
            .read_exact(buf)
            .await
            .map(drop)
            .map_err(|_| SessionError::LostConnection)
    }

    /// Writes file data without flushing.
    pub async fn write_data(&mut self, data: &[u8]) -> Result<(), SessionError> {
        self.writer
            .write_all(data)
            .await
            .map_err(|_| SessionError::LostConnection)
    }

    /// Whether `write_owned` saves a copy.
    pub fn takes_owned(&self) -> bool
    where
        W: DataWrite,
    {
        self.writer.takes_owned()
    }

    /// Writes `data` by handing the buffer itself to a writer that
    /// `takes_owned` (one that does not gets a flush and a copy).
    pub async fn write_owned(&mut self, data: Bytes) -> Result<(), SessionError>
    where
        W: DataWrite,
    {
        self.flush().await?;
        match Pin::new(&mut self.writer).send_owned(data) {
            Ok(()) => Ok(()),
            Err(data) => self.write_data(&data).await,
        }
    }

    pub async fn flush(&mut self) -> Result<(), SessionError> {
        self.writer
            .flush()
            .await
            .map_err(|_| SessionError::LostConnection)
    }

    /// Writes a record or reply and flushes it.
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        self.write_data(bytes).await?;
        self.flush().await
    }

    pub async fn send_ok(&mut self) -> Result<(), SessionError> {
        self.send(&[0]).await
    }

    /// `\x01rscp: message\n`: this request failed, go on.
    pub async fn send_error(&mut self, message: &str) -> Result<(), SessionError> {
        self.send(&peer_message(1, message)).await
    }

    /// `\x02rscp: message\n`: we stop. A peer that is gone by now does not
    /// change that, so write errors are ignored.
    pub async fn send_fatal(&mut self, message: &str) {
        let _ = self.send(&peer_message(2, message)).await;
    }

    /// Ends the session from our side (the peer sees end of stream) and
    /// waits for the peer to end too. A sink says nothing after its last
    /// reply but, at most, a message (returned, to be shown); anything else
    /// is a protocol error. Bounded: a peer that keeps talking is cut off.
    pub async fn finish(self) -> Result<Option<Vec<u8>>, SessionError> {
        let Wire {
            mut reader,
            mut writer,
        } = self;
        let _ = writer.flush().await;
        let _ = writer.shutdown().await;
        drop(writer);
        let mut rest = Vec::new();
        let _ = (&mut reader)
            .take(MAX_LINE as u64)
            .read_to_end(&mut rest)
            .await;
        // `\0`s a sink sent ahead for requests that never came.
        let rest = &rest[rest.iter().take_while(|&&b| b == 0).count()..];
        if rest.is_empty() {
            return Ok(None);
        }
        match rest.strip_prefix(b"\x01").or(rest.strip_prefix(b"\x02")) {
            Some(message) => Ok(Some(
                message.strip_suffix(b"\n").unwrap_or(message).to_vec(),
            )),
            None => Err(SessionError::Protocol(
                "unexpected data after the last reply".into(),
            )),
        }
    }
}

/// A message line for the peer; never more than one line, whatever the
/// message holds.
fn peer_message(kind: u8, message: &str) -> Vec<u8> {
    let mut line = vec![kind];
    line.extend_from_slice(PEER_PREFIX.as_bytes());
    line.extend_from_slice(for_terminal(message.as_bytes()).as_bytes());
    line.truncate(MAX_LINE - 1);
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn wire_over(bytes: &[u8]) -> Wire<&[u8], Vec<u8>> {
        Wire::new(bytes, Vec::new())
    }

    #[tokio::test]
    async fn lines_are_bounded() {
        let long = vec![b'x'; MAX_LINE * 2];
        let mut wire = wire_over(&long).await;
        assert_eq!(
            wire.read_line().await,
            Err(SessionError::Protocol("control record too long".into()))
        );
        let mut ok = vec![b'y'; MAX_LINE - 1];
        ok.push(b'\n');
        let mut wire = wire_over(&ok).await;
        assert_eq!(wire.read_line().await.unwrap().unwrap().len(), MAX_LINE - 1);
    }

    #[tokio::test]
    async fn end_of_stream() {
        let mut wire = wire_over(b"").await;
        assert_eq!(wire.read_line().await, Ok(None));
        let mut wire = wire_over(b"partial").await;
        assert_eq!(wire.read_line().await, Err(SessionError::LostConnection));
        let mut wire = wire_over(b"").await;
        assert_eq!(wire.read_reply().await, Err(SessionError::LostConnection));
    }

    #[tokio::test]
    async fn replies() {
        let mut wire = wire_over(b"\0\x01bad file\n\x02fatal\nNo match.\n").await;
        assert_eq!(wire.read_reply().await, Ok(Reply::Ok));
        assert_eq!(
            wire.read_reply().await,
            Ok(Reply::Error(b"bad file".to_vec()))
        );
        assert_eq!(wire.read_reply().await, Ok(Reply::Fatal(b"fatal".to_vec())));
        assert_eq!(
            wire.read_reply().await,
            Ok(Reply::Fatal(b"No match.".to_vec()))
        );
    }

    #[test]
    fn peer_messages_stay_on_one_line() {
        assert_eq!(peer_message(1, "a\nb: why"), b"\x01rscp: a\\012b: why\n");
        let huge = "z".repeat(MAX_LINE * 2);
        let line = peer_message(2, &huge);
        assert_eq!(line.len(), MAX_LINE);
        assert_eq!(line.last(), Some(&b'\n'));
    }
}
