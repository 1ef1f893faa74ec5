//! One SFTP session over a byte stream: the version handshake, the
//! server's limits, request ids, and replies matched to the requests that
//! are waiting for them, in whatever order they come.

use std::collections::HashSet;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};

use super::codec::{self, Limits, Reply, Request};
use crate::engine::{DataWrite, SessionError};

/// The largest message accepted from the server (OpenSSH's client limit).
pub const MAX_MESSAGE: usize = 256 * 1024;

/// Data per READ or WRITE when the server states no limit.
pub const DEFAULT_DATA: u32 = 32 * 1024;

/// The most data per READ or WRITE rscp asks for, whatever the server
/// allows: a whole message less room for its header (as OpenSSH's client).
pub const MAX_DATA: u32 = 256 * 1024 - 1024;

/// Files a download opens at once, when the server does not say how many
/// handles it can hold.
pub const DEFAULT_FILES_AHEAD: usize = 64;

/// The most it opens at once when the server can hold more: half of them
/// (OpenSSH's sftp-server says its descriptor limit, less 5), at most
/// this many.
pub const MAX_FILES_AHEAD: usize = 256;

fn protocol(why: impl Into<String>) -> SessionError {
    SessionError::Protocol(why.into())
}

pub struct Session<R, W> {
    reader: BufReader<R>,
    writer: W,
    /// Requests encoded and not yet written.
    pending: BytesMut,
    next_id: u32,
    /// Ids sent and not yet answered.
    waiting: HashSet<u32>,
    /// Data per READ and WRITE: the server's limit (or 32 KiB without
    /// one), or `-X buffer`.
    pub read_len: u32,
    pub write_len: u32,
    /// Files a download opens at once (see [`MAX_FILES_AHEAD`]).
    pub files_ahead: usize,
    extensions: Vec<Vec<u8>>,
}

impl<R, W> Session<R, W>
where
    R: AsyncRead + Unpin,
    W: DataWrite,
{
    /// Says hello (version 3), reads the server's version and extensions,
    /// and asks for its limits where it offers them. `buffer` is `-X
    /// buffer=N`, which wins over the server's limit.
    pub async fn start(reader: R, writer: W, buffer: Option<u32>) -> Result<Self, SessionError> {
        let mut session = Session {
            reader: BufReader::with_capacity(64 * 1024, reader),
            writer,
            pending: BytesMut::new(),
            next_id: 1,
            waiting: HashSet::new(),
            read_len: DEFAULT_DATA,
            write_len: DEFAULT_DATA,
            files_ahead: DEFAULT_FILES_AHEAD,
            extensions: Vec::new(),
        };
        codec::encode_init(&mut session.pending);
        session.flush().await?;
        let packet = session.read_packet().await?;
        let version = codec::decode_version(&packet).map_err(protocol)?;
        if version.version < 3 {
            return Err(protocol(format!(
                "server speaks SFTP version {}, not 3",
                version.version
            )));
        }
        session.extensions = version.extensions.into_iter().map(|(n, _)| n).collect();
        if session.has_extension(b"limits@openssh.com") {
            let limits = session.limits().await?;
            let cap = |limit: u64| {
                if limit == 0 {
                    MAX_DATA
                } else {
                    u32::try_from(limit).unwrap_or(MAX_DATA).clamp(1, MAX_DATA)
                }
            };
            session.read_len = cap(limits.max_read);
            session.write_len = cap(limits.max_write);
            if limits.open_handles > 0 {
                let half = usize::try_from(limits.open_handles / 2).unwrap_or(usize::MAX);
                session.files_ahead = half.clamp(1, MAX_FILES_AHEAD);
            }
        }
        if let Some(buffer) = buffer {
            // Larger would not fit in one message (OpenSSH's server would
            // drop the connection).
            session.read_len = buffer.min(MAX_DATA);
            session.write_len = buffer.min(MAX_DATA);
        }
        Ok(session)
    }

    pub fn has_extension(&self, name: &[u8]) -> bool {
        self.extensions.iter().any(|n| n == name)
    }

    async fn limits(&mut self) -> Result<Limits, SessionError> {
        let request = Request::Extended {
            name: "limits@openssh.com",
            fields: &[],
        };
        match self.call(&request).await? {
            Reply::ExtendedReply(data) => codec::decode_limits(&data).map_err(protocol),
            other => Err(unexpected(&other)),
        }
    }

    /// Queues `request`; returns its id. Written at the next flush (or
    /// before the next WRITE's data).
    pub fn send(&mut self, request: &Request<'_>) -> u32 {
        let id = self.take_id();
        codec::encode(id, request, &mut self.pending);
        id
    }

    fn take_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.waiting.insert(id);
        id
    }

    /// A buffer holding the header of a WRITE of `len` bytes at `offset`,
    /// with room for the data after it; returns it with the request's id.
    pub fn write_packet(&mut self, handle: &[u8], offset: u64, len: u32) -> (u32, BytesMut) {
        let id = self.take_id();
        let mut packet = BytesMut::with_capacity(codec::write_header_len(handle) + len as usize);
        codec::encode_write_header(id, handle, offset, len, &mut packet);
        (id, packet)
    }

    /// Sends a finished WRITE packet, handing the buffer over where the
    /// writer takes buffers (no copy of the data).
    pub async fn send_packet(&mut self, packet: Bytes) -> Result<(), SessionError> {
        self.write_pending().await?;
        if self.writer.takes_owned() {
            self.writer
                .flush()
                .await
                .map_err(|_| SessionError::LostConnection)?;
            if let Err(packet) = std::pin::Pin::new(&mut self.writer).send_owned(packet) {
                self.write_all(&packet).await?;
            }
            Ok(())
        } else {
            self.write_all(&packet).await
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        self.writer
            .write_all(bytes)
            .await
            .map_err(|_| SessionError::LostConnection)
    }

    async fn write_pending(&mut self) -> Result<(), SessionError> {
        if !self.pending.is_empty() {
            let pending = self.pending.split();
            self.write_all(&pending).await?;
        }
        Ok(())
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<(), SessionError> {
        self.write_pending().await?;
        self.writer
            .flush()
            .await
            .map_err(|_| SessionError::LostConnection)
    }

    /// Whether any request is still unanswered.
    pub fn has_waiting(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// The next reply, with the id of the request it answers. A reply to
    /// an id that is not waiting is a protocol error.
    pub async fn receive(&mut self) -> Result<(u32, Reply), SessionError> {
        // Also sends a WRITE handed over whole, which goes only when the
        // writer is flushed.
        self.flush().await?;
        let packet = self.read_packet().await?;
        let (id, reply) = codec::decode_reply(&packet).map_err(protocol)?;
        if !self.waiting.remove(&id) {
            return Err(protocol(format!(
                "reply to request {id}, which was never sent"
            )));
        }
        Ok((id, reply))
    }

    /// Sends one request and waits for its reply (nothing else may be in
    /// flight).
    pub async fn call(&mut self, request: &Request<'_>) -> Result<Reply, SessionError> {
        let id = self.send(request);
        let (answered, reply) = self.receive().await?;
        if answered != id {
            return Err(protocol(format!(
                "reply to request {answered} while {id} was waiting"
            )));
        }
        Ok(reply)
    }

    async fn read_packet(&mut self) -> Result<Bytes, SessionError> {
        let len = self
            .reader
            .read_u32()
            .await
            .map_err(|_| SessionError::LostConnection)? as usize;
        if len > MAX_MESSAGE {
            // Also what text from a login script looks like.
            return Err(protocol(format!("received message too long {len}")));
        }
        if len < 5 {
            return Err(protocol(format!("received message too short {len}")));
        }
        // Read into spare capacity: no pass over the data to zero it first.
        let mut packet = BytesMut::with_capacity(len);
        while packet.len() < len {
            let want = (len - packet.len()) as u64;
            let read = (&mut self.reader).take(want).read_buf(&mut packet).await;
            match read {
                Ok(0) | Err(_) => return Err(SessionError::LostConnection),
                Ok(_) => {}
            }
        }
        Ok(packet.freeze())
    }

    /// Ends the session: nothing more will be asked.
    pub async fn shutdown(&mut self) {
        let _ = self.flush().await;
        let _ = self.writer.shutdown().await;
    }
}

/// The error for a reply of the wrong kind.
pub fn unexpected(reply: &Reply) -> SessionError {
    let kind = match reply {
        Reply::Status { .. } => "status",
        Reply::Handle(_) => "handle",
        Reply::Data(_) => "data",
        Reply::Name(_) => "name",
        Reply::Attrs(_) => "attributes",
        Reply::ExtendedReply(_) => "extended reply",
    };
    protocol(format!("unexpected {kind} reply"))
}

/// What a status means, in the words scp's legacy mode uses for the same
/// errors (strerror's), so that messages read alike in both modes.
pub fn status_text(code: u32, message: &[u8]) -> String {
    match code {
        codec::FX_OK => "Success".into(),
        codec::FX_EOF => "End of file".into(),
        codec::FX_NO_SUCH_FILE => "No such file or directory".into(),
        codec::FX_PERMISSION_DENIED => "Permission denied".into(),
        codec::FX_BAD_MESSAGE => "Bad message".into(),
        codec::FX_NO_CONNECTION => "No connection".into(),
        codec::FX_CONNECTION_LOST => "Connection lost".into(),
        codec::FX_OP_UNSUPPORTED => "Operation unsupported".into(),
        // FAILURE covers everything else (a full disk, an existing
        // directory): the server's own words say which, escaped.
        _ if !message.is_empty() => crate::escape::for_terminal(message),
        codec::FX_FAILURE => "Failure".into(),
        other => format!("Unknown status {other}"),
    }
}
