//! Remote to remote through this host (`-3`): the sink of one remote
//! `scp -f` and the source of another remote `scp -t` at once. Every record
//! from the origin is checked as a sink would check it before it is passed
//! on; every reply from the destination goes back to the origin.

use tokio::io::{AsyncRead, AsyncWrite};

use super::names::NameFilter;
use super::record::{Record, Times};
use super::wire::{Incoming, Reply, Wire};
use crate::engine::{Destination, SessionError, Summary};
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

/// `-3` from a remote `scp -f` into a destination that is not a remote
/// `scp -t` (an SFTP server): every record checked as a sink checks it,
/// and answered here with what the destination made of it. The origin has
/// had its go-ahead already.
pub(crate) async fn relay_into<RA, WA, D>(
    from: (RA, WA),
    destination: &mut D,
    options: RelayOptions,
    events: &dyn Events,
) -> Result<Summary, SessionError>
where
    RA: AsyncRead + Unpin,
    WA: AsyncWrite + Unpin,
    D: Destination,
{
    let mut origin = Wire::new(from.0, from.1);
    let mut pacer = options.limit.map(Pacer::new);
    let mut errors = 0u32;
    let result = async {
        let mut depth = 0usize;
        // Some(..) once a `T` arrived; its times go to the next `C` or `D`.
        let mut pending_times: Option<Option<Times>> = None;
        let mut first = true;
        loop {
            let record = match origin.next_record(first, events, b"Relay: ").await? {
                Incoming::End if depth == 0 && pending_times.is_none() => return Ok(()),
                Incoming::End => return Err(SessionError::LostConnection),
                Incoming::Warning(_) => {
                    errors += 1;
                    first = false;
                    continue;
                }
                Incoming::Record(record, _) => record,
            };
            first = false;
            let refusal = match record {
                Record::Times(times) => {
                    pending_times = Some(times);
                    None
                }
                Record::End => {
                    let Some(inner) = depth.checked_sub(1) else {
                        return Err(SessionError::Protocol(
                            "end of directory outside a directory".into(),
                        ));
                    };
                    depth = inner;
                    destination.leave_directory().await?
                }
                Record::Directory { mode, name } => {
                    if !options.recursive {
                        return Err(SessionError::Protocol(
                            "received directory without -r".into(),
                        ));
                    }
                    check_requested(&options, depth, &name, true)?;
                    let times = pending_times.take().flatten();
                    let refusal = destination.enter_directory(&name, mode, times).await?;
                    if refusal.is_none() {
                        depth += 1;
                    }
                    refusal
                }
                Record::File { mode, size, name } => {
                    check_requested(&options, depth, &name, false)?;
                    let times = pending_times.take().flatten();
                    match destination.begin_file(&name, mode, size, times).await? {
                        Some(why) => Some(why),
                        None => {
                            origin.send_ok().await?;
                            let failure = pass_into(
                                &mut origin,
                                destination,
                                &name,
                                size,
                                &mut pacer,
                                events,
                            )
                            .await?;
                            if failure.is_some() {
                                errors += 1;
                            }
                            destination.end_file(failure.as_deref()).await?
                        }
                    }
                }
            };
            match refusal {
                None => origin.send_ok().await?,
                Some(why) => origin.send_error(&why).await?,
            }
        }
    }
    .await;
    if let Err(SessionError::Protocol(_)) = &result
        && let Some(message) = result.as_ref().err().and_then(SessionError::message)
    {
        origin.send_fatal(&message).await;
    }
    result?;
    if let Some(message) = origin.finish().await? {
        events.peer_message(&message);
        errors += 1;
    }
    Ok(Summary { errors })
}

/// Strict filename checking of the origin's top-level names.
fn check_requested(
    options: &RelayOptions,
    depth: usize,
    name: &[u8],
    directory: bool,
) -> Result<(), SessionError> {
    match &options.filter {
        Some(filter) if depth == 0 && !filter.allows(name, directory) => Err(
            SessionError::Protocol("filename does not match request".into()),
        ),
        _ => Ok(()),
    }
}

/// A file's data from the origin to the destination, then the origin's
/// status byte: why its data is bad, if it says so.
async fn pass_into<RA, WA, D>(
    origin: &mut Wire<RA, WA>,
    destination: &mut D,
    name: &[u8],
    size: u64,
    pacer: &mut Option<Pacer>,
    events: &dyn Events,
) -> Result<Option<String>, SessionError>
where
    RA: AsyncRead + Unpin,
    WA: AsyncWrite + Unpin,
    D: Destination,
{
    let file = FileId::next();
    events.file_started(file, name, size);
    let piece = pacer.as_ref().map_or(CHUNK, |p| p.piece(CHUNK));
    let mut buf = vec![0u8; piece.min(CHUNK)];
    let mut left = size;
    let moved = async {
        while left > 0 {
            let len = left.min(buf.len() as u64) as usize;
            origin.read_data(&mut buf[..len]).await?;
            // A destination that failed takes nothing more; the data is
            // still read, to stay in step.
            destination.file_data(&buf[..len]).await?;
            events.file_progress(file, len as u64);
            if let Some(pacer) = pacer.as_mut() {
                pacer.moved(len as u64).await;
            }
            left -= len as u64;
        }
        Ok::<(), SessionError>(())
    }
    .await;
    events.file_finished(file);
    moved?;
    match origin.read_reply().await? {
        Reply::Ok => Ok(None),
        Reply::Error(message) => {
            events.peer_message(&message);
            Ok(Some(String::from_utf8_lossy(&message).into_owned()))
        }
        Reply::Fatal(message) => {
            events.peer_message(&message);
            Err(SessionError::PeerFailed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Refusal;

    /// A destination that writes down what it is handed.
    #[derive(Default)]
    struct Recorder {
        calls: Vec<String>,
        refuse_files: bool,
    }

    impl Destination for Recorder {
        async fn enter_directory(
            &mut self,
            name: &[u8],
            mode: u32,
            times: Option<Times>,
        ) -> Result<Refusal, SessionError> {
            let mtime = times.map(|t| t.mtime);
            let name = String::from_utf8_lossy(name);
            self.calls.push(format!("D {mode:o} {name} {mtime:?}"));
            Ok(None)
        }
        async fn leave_directory(&mut self) -> Result<Refusal, SessionError> {
            self.calls.push("E".into());
            Ok(None)
        }
        async fn begin_file(
            &mut self,
            name: &[u8],
            mode: u32,
            size: u64,
            _times: Option<Times>,
        ) -> Result<Refusal, SessionError> {
            let name = String::from_utf8_lossy(name);
            self.calls.push(format!("C {mode:o} {size} {name}"));
            Ok(self.refuse_files.then(|| "no room".to_owned()))
        }
        fn room(&self) -> Option<u64> {
            None
        }
        async fn file_data(&mut self, data: &[u8]) -> Result<(), SessionError> {
            self.calls
                .push(format!("data {}", String::from_utf8_lossy(data)));
            Ok(())
        }
        async fn end_file(&mut self, failure: Option<&str>) -> Result<Refusal, SessionError> {
            self.calls.push(format!("end {failure:?}"));
            Ok(None)
        }
    }

    /// Runs `relay_into` against an origin that says `said`, with `-r` and
    /// strict checking of `request`. Returns the outcome, what the
    /// destination was handed and what the origin was answered.
    async fn relay(
        said: &[u8],
        request: &[u8],
        recorder: Recorder,
    ) -> (Result<Summary, SessionError>, Vec<String>, Vec<u8>) {
        let mut recorder = recorder;
        let mut answers = Vec::new();
        let options = RelayOptions {
            recursive: true,
            filter: Some(NameFilter::for_request(request)),
            limit: None,
        };
        let outcome = relay_into(
            (said, &mut answers),
            &mut recorder,
            options,
            &crate::events::NoEvents,
        )
        .await;
        (outcome, recorder.calls, answers)
    }

    #[tokio::test]
    async fn a_tree_is_handed_over_and_answered() {
        let said = b"T1200000000 0 1200000000 0\nD0755 0 d\nC0644 5 f\nhello\0E\n";
        let (outcome, calls, answers) = relay(said, b"/x/d", Recorder::default()).await;
        assert_eq!(outcome, Ok(Summary { errors: 0 }));
        assert_eq!(
            calls,
            [
                "D 755 d Some(1200000000)",
                "C 644 5 f",
                "data hello",
                "end None",
                "E"
            ]
        );
        assert_eq!(answers, [0, 0, 0, 0, 0]);
    }

    #[tokio::test]
    async fn a_refused_file_is_answered_and_its_data_never_awaited() {
        let said = b"C0644 5 f\nC0600 1 g\n";
        let recorder = Recorder {
            refuse_files: true,
            ..Recorder::default()
        };
        let (outcome, calls, answers) = relay(said, b"/x/{f,g}", recorder).await;
        assert_eq!(outcome, Ok(Summary { errors: 0 }));
        assert_eq!(calls, ["C 644 5 f", "C 600 1 g"]);
        assert_eq!(answers, b"\x01rscp: no room\n\x01rscp: no room\n");
    }

    #[tokio::test]
    async fn the_origins_complaint_about_its_data_reaches_the_destination() {
        let said = b"C0644 2 f\nxx\x01f: read error\n";
        let (outcome, calls, _) = relay(said, b"f", Recorder::default()).await;
        assert_eq!(outcome, Ok(Summary { errors: 1 }));
        assert_eq!(calls.last().unwrap(), "end Some(\"f: read error\")");
    }

    /// Hostile origins: nothing they name reaches the destination.
    #[tokio::test]
    async fn hostile_origins_end_the_session_before_the_destination_sees_a_name() {
        for (said, request, why) in [
            (&b"C0644 1 ../evil\nx\0"[..], &b"f"[..], "protocol error"),
            (b"C0644 1 a/b\nx\0", b"f", "protocol error"),
            (
                b"C0644 1 other\nx\0",
                b"wanted",
                "filename does not match request",
            ),
            (b"D0755 0 ..\nE\n", b"d", "protocol error"),
            (b"E\n", b"d", "end of directory outside a directory"),
            (b"C0644 9 f\nshort", b"f", "lost connection"),
            (b"D0755 0 d\n", b"d", "lost connection"),
        ] {
            let (outcome, calls, answers) = relay(said, request, Recorder::default()).await;
            let text = outcome.unwrap_err().to_string();
            assert!(text.contains(why), "{said:?}: {text}");
            assert!(
                calls.iter().all(|c| !c.contains("evil")
                    && !c.contains("a/b")
                    && !c.contains("other")
                    && !c.contains(" ..")),
                "{said:?}: {calls:?}"
            );
            if why.starts_with("protocol") || why.contains("match") || why.contains("outside") {
                assert_eq!(answers.first(), Some(&2), "{said:?}: {answers:?}");
            }
        }
    }
}
