//! Remote to remote through this host (`-3`): the sink of one remote
//! `scp -f` and the source of another remote `scp -t` at once. Every record
//! from the origin is checked as a sink would check it before it is passed
//! on; every reply from the destination goes back to the origin.

use tokio::io::{AsyncRead, AsyncWrite};

use super::names::NameFilter;
use super::record::Record;
use super::wire::{Incoming, Reply, Wire};
use crate::engine::{SessionError, Summary};
use crate::events::{Events, FileId};
use crate::local::{CHUNK, Pacer};

#[derive(Debug, Clone, Default)]
pub struct RelayOptions {
    pub recursive: bool,
    /// Strict filename checking of the origin's top-level names.
    pub filter: Option<NameFilter>,
    /// `-l`, in bytes per second.
    pub limit: Option<u64>,
}

pub struct Relay<'e, RA, WA, RB, WB> {
    /// The origin, a remote `scp -f`.
    from: Wire<RA, WA>,
    /// The destination, a remote `scp -t`.
    to: Wire<RB, WB>,
    options: RelayOptions,
    events: &'e dyn Events,
    errors: u32,
    /// See [`Relay::after_origin_go_ahead`].
    origin_started: bool,
    pacer: Option<Pacer>,
}

impl<'e, RA, WA, RB, WB> Relay<'e, RA, WA, RB, WB>
where
    RA: AsyncRead + Unpin,
    WA: AsyncWrite + Unpin,
    RB: AsyncRead + Unpin,
    WB: AsyncWrite + Unpin,
{
    pub fn new(
        from: (RA, WA),
        to: (RB, WB),
        options: RelayOptions,
        events: &'e dyn Events,
    ) -> Self {
        Relay {
            from: Wire::new(from.0, from.1),
            to: Wire::new(to.0, to.1),
            pacer: options.limit.map(Pacer::new),
            options,
            events,
            errors: 0,
            origin_started: false,
        }
    }

    /// For an origin that has had its go-ahead already (the client sends
    /// it to see whether the origin runs scp at all): the destination's is
    /// then checked, not passed on.
    pub fn after_origin_go_ahead(mut self) -> Self {
        self.origin_started = true;
        self
    }

    pub async fn run(mut self) -> Result<Summary, SessionError> {
        let result = self.relay().await;
        if let Err(SessionError::Protocol(_)) = &result
            && let Some(message) = result.as_ref().err().and_then(SessionError::message)
        {
            self.from.send_fatal(&message).await;
        }
        result?;
        // The origin is done: so is the destination.
        let (mut errors, events) = (self.errors, self.events);
        if let Some(message) = self.to.finish().await? {
            events.peer_message(&message);
            errors += 1;
        }
        Ok(Summary { errors })
    }

    async fn relay(&mut self) -> Result<(), SessionError> {
        // The destination's go-ahead first, passed on as the origin's: if
        // it refuses (say, -d with a target that is not a directory) the
        // origin is never started. (One go-ahead: a second would be taken
        // for the reply to the first record.)
        if self.origin_started {
            match self.to.read_reply().await? {
                Reply::Ok => {}
                Reply::Error(message) | Reply::Fatal(message) => {
                    self.events.peer_message(&message);
                    self.errors += 1;
                    return Err(SessionError::PeerFailed);
                }
            }
        } else if !self.pass_reply().await? {
            return Err(SessionError::PeerFailed);
        }
        let mut depth = 0usize;
        let mut pending_times = false;
        let mut first = true;
        loop {
            let (record, line) = match self
                .from
                .next_record(first, self.events, b"Relay: ")
                .await?
            {
                Incoming::End if depth == 0 && !pending_times => return Ok(()),
                Incoming::End => return Err(SessionError::LostConnection),
                Incoming::Warning(line) => {
                    // The origin's complaint: passed on, so that the
                    // destination's scp knows the run had an error.
                    self.errors += 1;
                    self.forward(&line).await?;
                    first = false;
                    continue;
                }
                Incoming::Record(record, line) => (record, line),
            };
            first = false;
            match &record {
                Record::File { name, .. } | Record::Directory { name, .. } => {
                    if matches!(record, Record::Directory { .. }) && !self.options.recursive {
                        return Err(SessionError::Protocol(
                            "received directory without -r".into(),
                        ));
                    }
                    if depth == 0
                        && let Some(filter) = &self.options.filter
                        && !filter.allows(name, matches!(record, Record::Directory { .. }))
                    {
                        return Err(SessionError::Protocol(
                            "filename does not match request".into(),
                        ));
                    }
                }
                Record::End if depth == 0 => {
                    return Err(SessionError::Protocol(
                        "end of directory outside a directory".into(),
                    ));
                }
                _ => {}
            }
            self.forward(&line).await?;
            let accepted = self.pass_reply().await?;
            match record {
                Record::Times(_) => pending_times = accepted,
                Record::Directory { .. } => {
                    pending_times = false;
                    if accepted {
                        depth += 1;
                    }
                }
                Record::End => depth -= 1,
                Record::File { size, name, .. } => {
                    pending_times = false;
                    if accepted {
                        self.pass_file(&name, size).await?;
                    }
                }
            }
        }
    }

    /// A control line to the destination (newline added back).
    async fn forward(&mut self, line: &[u8]) -> Result<(), SessionError> {
        let mut out = Vec::with_capacity(line.len() + 1);
        out.extend_from_slice(line);
        out.push(b'\n');
        self.to.send(&out).await
    }

    /// The destination's reply, passed to the origin. True for `\0`.
    async fn pass_reply(&mut self) -> Result<bool, SessionError> {
        let reply = self.to.read_reply().await?;
        self.send_reply(&reply, Side::Origin).await?;
        match reply {
            Reply::Ok => Ok(true),
            Reply::Error(message) => {
                self.events.peer_message(&message);
                self.errors += 1;
                Ok(false)
            }
            Reply::Fatal(message) => {
                self.events.peer_message(&message);
                self.errors += 1;
                Err(SessionError::PeerFailed)
            }
        }
    }

    async fn send_reply(&mut self, reply: &Reply, side: Side) -> Result<(), SessionError> {
        let wire_bytes = match reply {
            Reply::Ok => vec![0],
            Reply::Error(message) | Reply::Fatal(message) => {
                let kind = if matches!(reply, Reply::Error(_)) {
                    1
                } else {
                    2
                };
                let mut out = vec![kind];
                out.extend_from_slice(message);
                out.push(b'\n');
                out
            }
        };
        match side {
            Side::Origin => self.from.send(&wire_bytes).await,
            Side::Destination => self.to.send(&wire_bytes).await,
        }
    }

    /// A file's data and the origin's status byte to the destination; then
    /// the destination's final reply back to the origin.
    async fn pass_file(&mut self, name: &[u8], size: u64) -> Result<(), SessionError> {
        let file = FileId::next();
        self.events.file_started(file, name, size);
        let piece = self.pacer.as_ref().map_or(CHUNK, |p| p.piece(CHUNK));
        let mut buf = vec![0u8; piece.min(CHUNK)];
        let mut left = size;
        let moved = async {
            while left > 0 {
                let len = left.min(buf.len() as u64) as usize;
                self.from.read_data(&mut buf[..len]).await?;
                self.to.write_data(&buf[..len]).await?;
                self.events.file_progress(file, len as u64);
                if let Some(pacer) = self.pacer.as_mut() {
                    pacer.moved(len as u64).await;
                }
                left -= len as u64;
            }
            Ok::<(), SessionError>(())
        }
        .await;
        self.events.file_finished(file);
        moved?;
        let status = self.from.read_reply().await?;
        if let Reply::Error(message) | Reply::Fatal(message) = &status {
            self.events.peer_message(message);
            self.errors += 1;
        }
        self.send_reply(&status, Side::Destination).await?;
        if let Reply::Fatal(_) = status {
            return Err(SessionError::PeerFailed);
        }
        self.pass_reply().await?;
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum Side {
    Origin,
    Destination,
}
