//! The user's side of a run: carries out the plan's steps.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::cli::{Invocation, RemoteToRemote};
use crate::engine::{DataWrite, SessionError, Summary};
use crate::escape::path_for_terminal;
use crate::events::Events;
use crate::local::receive::require_directory;
use crate::local::{CHUNK, bytes_per_second, walk};
use crate::operand::Remote;
use crate::plan::{self, Destination, ToLocal, ToRemote};
use crate::report::{self, LocalEnd};
use crate::scp::{
    NameFilter, Relay, RelayOptions, Sink, SinkOptions, Source, SourceOptions, relay_into,
};
use crate::sftp::{DEFAULT_REQUESTS, STRIPE_MIN, Sftp, SftpDestination, SftpOptions, UploadTarget};
use crate::spread;
use crate::transport::ssh::{Lane, NativeTransport};
use crate::transport::{Channel, Completion, DirectTransport, ProgramTransport, Start, Transport};
use futures_util::future::Either;

type RemoteSource<'e> = Source<'e, Pin<Box<dyn AsyncRead + Send>>, Pin<Box<dyn DataWrite + Send>>>;

/// Replies a download's sink sends ahead of the requests they answer: the
/// remote `scp -f` then does not wait a round trip for each record, and
/// the `\0`s waiting stay a few bytes.
const REPLIES_AHEAD: usize = 64;

/// More SFTP sessions a big upload is striped over, at most, and the
/// handshake time from which it pays (below it, one session's window is
/// not what limits the copy). Ten sessions in all, sshd's default
/// MaxSessions: each is held to its 2 MiB window, and nine were about 5%
/// slower (peak RSS 16.3 MiB with ten, 15.7 with nine).
const STRIPES: usize = 9;
const STRIPE_LATENCY: std::time::Duration = std::time::Duration::from_millis(10);

/// One operand of a spread upload: the first channel walks it and makes
/// its directories; its files go to helpers with room, or by the first
/// channel itself. `root_exists`: the helpers' root is the target (a
/// directory that was there), so they go into the tree's top first.
async fn spread_one<R, W>(
    primary: &mut Source<'_, R, W>,
    helpers: &mut spread::Helpers,
    path: &Path,
    root_exists: bool,
    (recursive, preserve): (bool, bool),
    events: &dyn Events,
) -> Result<(), SessionError>
where
    R: AsyncRead + Unpin,
    W: DataWrite,
{
    let mut walk = walk::Walk::new(path, recursive);
    // The directories the walk is in, from the operand's top, and their
    // own modes.
    let mut inside: spread::Way = Vec::new();
    let mut modes: Vec<u32> = Vec::new();
    while let Some(step) = walk.next() {
        match step {
            walk::Step::File { path, file, meta } => {
                // Helpers go into directories with owner rwx added (their
                // sinks, with -p, set that mode): under a directory that
                // locks its owner out, its own first channel sends.
                let open_to_helpers = modes.iter().all(|mode| mode & 0o700 == 0o700);
                let way = if !open_to_helpers {
                    None
                } else if root_exists {
                    Some(inside.clone())
                } else {
                    inside.get(1..).map(<[_]>::to_vec)
                };
                let job = match way {
                    Some(way) => helpers.offer(spread::Job::File {
                        way,
                        path,
                        file,
                        meta: Box::new(meta),
                    }),
                    None => Some(spread::Job::File {
                        way: Vec::new(),
                        path,
                        file,
                        meta: Box::new(meta),
                    }),
                };
                if let Some(spread::Job::File {
                    path, file, meta, ..
                }) = job
                {
                    primary.send_walk_file(&path, file, &meta).await?;
                }
                if let Some(here) = helpers_way(&inside, root_exists) {
                    let back = helpers.returned_to(here);
                    send_returned(primary, here, back, events).await?;
                }
            }
            walk::Step::Directory(directory) => {
                if primary.send_walk_directory(&directory).await? {
                    let mode = std::os::unix::fs::MetadataExt::mode(&directory.meta);
                    inside.push((directory.name(), (mode & 0o7777) | 0o700));
                    modes.push(mode);
                    helpers.start();
                    walk.enter(directory);
                }
            }
            walk::Step::Leave => {
                let mode = modes.pop().unwrap_or(0o700);
                // Its times (-p), or a mode without owner rwx, are set by
                // the first channel's `E`: after every file in it. And
                // before an operand's top is left, what helpers gave back
                // under it is sent.
                let top = inside.len() == 1;
                if preserve || mode & 0o700 != 0o700 || top {
                    helpers.sync().await;
                }
                if let Some(here) = helpers_way(&inside, root_exists) {
                    // (Only without -p can a file be given back deeper
                    // down, in a directory that then has no times set.)
                    let back = if top {
                        helpers.returned_under(here)
                    } else {
                        helpers.returned_to(here)
                    };
                    send_returned(primary, here, back, events).await?;
                }
                inside.pop();
                primary.send_walk_end().await?;
            }
            walk::Step::Problem(message) => primary.send_walk_problem(&message).await?,
        }
    }
    Ok(())
}

/// Where the first channel is, as the helpers' way: `None` above their
/// root.
fn helpers_way(inside: &spread::Way, root_exists: bool) -> Option<&[(Vec<u8>, u32)]> {
    if root_exists {
        Some(&inside[..])
    } else {
        inside.get(1..)
    }
}

/// Files helpers gave back, in `from` or below it, sent over the first
/// channel, which goes down to each and back up to `from`.
async fn send_returned<R, W>(
    primary: &mut Source<'_, R, W>,
    from: &[(Vec<u8>, u32)],
    jobs: Vec<spread::Job>,
    events: &dyn Events,
) -> Result<(), SessionError>
where
    R: AsyncRead + Unpin,
    W: DataWrite,
{
    let mut at = from.to_vec();
    for job in jobs {
        let spread::Job::File {
            way,
            path,
            file,
            meta,
        } = job
        else {
            continue;
        };
        if spread::go(primary, &mut at, &way).await? {
            primary.send_walk_file(&path, file, &meta).await?;
        } else {
            let message = format!("{}: not sent: directory refused", path_for_terminal(&path));
            events.error(&message);
        }
    }
    spread::go(primary, &mut at, &from.to_vec()).await?;
    Ok(())
}

/// How long one of two sessions started together may take to answer
/// once the other has, in `took`: twice as long again, at least three
/// seconds (a loaded server starts sessions unevenly).
fn patience(took: std::time::Duration) -> std::time::Duration {
    took.saturating_mul(2)
        .max(std::time::Duration::from_secs(3))
}

/// Whether an upload has a file big enough to stripe.
fn has_big_file(steps: &[ToRemote]) -> bool {
    steps.iter().any(|step| {
        matches!(step, ToRemote::Upload(path)
            if fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() >= STRIPE_MIN))
    })
}

/// One end of `-3`, by the protocol it speaks.
enum RelayEnd {
    Scp(Box<Channel>),
    Sftp(Box<Channel>),
}

impl RelayEnd {
    fn channel(self) -> Channel {
        match self {
            RelayEnd::Scp(channel) | RelayEnd::Sftp(channel) => *channel,
        }
    }
}

/// What a remote `scp` did first.
enum ScpRuns {
    /// It answered: its channel, the bytes read put back.
    Yes(Box<Channel>),
    /// It could not run scp at all (it ended before a byte of output with
    /// exit status 127, or the server allows only SFTP). Nothing was
    /// written: the operand, and the rest for that host, go over SFTP.
    NoScp,
}

/// What sshd says, on the session's output, for a command on an account
/// that allows only SFTP (`ForceCommand internal-sftp`).
const SFTP_ONLY: &[u8] = b"This service allows sftp connections only.\n";

/// The first output of a remote scp, as far as it tells whether scp runs.
enum First {
    Output(Vec<u8>),
    SftpOnly,
    Nothing,
}

/// Reads until the output can be told: anything that is not the start
/// of sshd's SFTP-only answer is scp's; the answer itself counts only once
/// the output has ended right after it (however the reads split it).
async fn first_output(reader: &mut Pin<Box<dyn AsyncRead + Send>>) -> First {
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        let n = reader.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            return match got.as_slice() {
                [] => First::Nothing,
                all if all == SFTP_ONLY => First::SftpOnly,
                _ => First::Output(got),
            };
        }
        got.extend_from_slice(&buf[..n]);
        if !SFTP_ONLY.starts_with(&got) {
            return First::Output(got);
        }
    }
}

/// A host as a connection is keyed: user, host and port.
fn host_key(remote: &Remote) -> (Option<String>, String, Option<u16>) {
    (remote.user.clone(), remote.host.clone(), remote.port)
}

/// The one upload session all uploads of a run go through, whatever its
/// engine, with the means to learn how its remote side ended.
struct Upload<'e> {
    session: UploadSession<'e>,
    /// The remote sides: one per channel.
    completions: Vec<Completion>,
}

/// The first upload of a run: over one channel, or spread.
enum FirstUpload<'e> {
    Plain(Option<Upload<'e>>),
    Spread(Box<SpreadUpload<'e>>),
}

struct SpreadUpload<'e> {
    primary: RemoteSource<'e>,
    completions: Vec<Completion>,
    paths: Vec<PathBuf>,
    start: HelperStart,
}

/// How a spread upload's helpers start.
enum HelperStart {
    /// At once, the target a directory; with the helper that asked.
    Directory(Option<Box<Channel>>),
    /// Once the first channel has made the target (it was not there).
    AfterRoot,
    /// After the first channel: with one operand, one of them first asks
    /// whether the target is a directory.
    Probe,
}

/// The engine seam for uploads: the client hands over paths and knows no
/// records or messages.
enum UploadSession<'e> {
    Scp(Box<RemoteSource<'e>>),
    Sftp(Box<RemoteSftp<'e>>, UploadTarget),
}

type RemoteSftp<'e> = Sftp<'e, Pin<Box<dyn AsyncRead + Send>>, Pin<Box<dyn DataWrite + Send>>>;

impl UploadSession<'_> {
    async fn send(&mut self, path: &Path) -> Result<(), SessionError> {
        match self {
            UploadSession::Scp(source) => source.send(path).await,
            UploadSession::Sftp(sftp, target) => sftp.upload(path, target).await,
        }
    }

    async fn close(self) -> Result<Summary, SessionError> {
        match self {
            UploadSession::Scp(source) => source.close().await,
            UploadSession::Sftp(sftp, _) => sftp.close().await,
        }
    }
}

struct Client<'a> {
    invocation: &'a Invocation,
    events: &'a dyn Events,
    transport: &'a Transport,
    umask: u32,
    target_must_be_directory: bool,
    failed: bool,
    /// Hosts found to have no scp: reached over SFTP from then on.
    without_scp: std::collections::HashSet<(Option<String>, String, Option<u16>)>,
    /// How long the last upload's remote scp took to give its go-ahead.
    go_ahead_time: Option<std::time::Duration>,
}

/// How a client run ended, as scp's exit status says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 0: everything was copied.
    Copied,
    /// 1: something failed (the rest was copied).
    Failed,
    /// 255: a setup error stopped the run.
    Fatal,
}

/// Runs a client invocation.
pub async fn run(invocation: &Invocation, events: &dyn Events, umask: u32) -> Outcome {
    let plan = match plan::plan(&invocation.operands) {
        Ok(plan) => plan,
        Err(message) => {
            report::error(&message);
            return Outcome::Failed;
        }
    };
    // scp refuses this when it reaches such a source; rscp before starting.
    if let Destination::Remote { target, steps } = &plan.destination
        && invocation.remote_to_remote == RemoteToRemote::OnOrigin
        && target.port.is_some_and(|p| p != 22)
        && steps.iter().any(|s| matches!(s, ToRemote::FromRemote(_)))
    {
        report::error("target port not supported with two remote hosts and the -R option");
        return Outcome::Fatal;
    }
    let transport = match &invocation.ssh_program {
        _ if invocation.sftp && invocation.sftp_server.is_some() => {
            Transport::Direct(DirectTransport {
                program: invocation.sftp_server.clone().unwrap_or_default(),
            })
        }
        Some(program) => Transport::Program(ProgramTransport {
            program: program.clone(),
            ssh_args: invocation.ssh_args.clone(),
            port: invocation.port,
        }),
        None => Transport::Native(Box::new(NativeTransport::new(
            &invocation.ssh_args,
            invocation.port,
        ))),
    };
    let mut client = Client {
        invocation,
        events,
        transport: &transport,
        umask,
        // More than one source, or `-d` given by hand (as scp allows).
        target_must_be_directory: plan.target_must_be_directory
            || invocation.target_must_be_directory,
        failed: false,
        without_scp: std::collections::HashSet::new(),
        go_ahead_time: None,
    };
    match &plan.destination {
        Destination::Remote { target, steps } => client.upload_all(steps, target).await,
        Destination::Local { target, steps } => client.download_all(steps, Path::new(target)).await,
    }
    client.transport.close().await;
    if client.failed {
        Outcome::Failed
    } else {
        Outcome::Copied
    }
}

impl<'a> Client<'a> {
    fn fail(&mut self, message: &str) {
        report::error(message);
        self.failed = true;
    }

    async fn upload_all(&mut self, steps: &[ToRemote], target: &Remote) {
        if self.events.shows_progress() {
            let paths = steps.iter().filter_map(|s| match s {
                ToRemote::Upload(path) => Some(Path::new(path)),
                _ => None,
            });
            let (files, bytes) = walk::count(paths, self.invocation.recursive);
            self.events.expect(files, bytes);
        }
        // Opened at the first local source, as scp does; `None` after that
        // means it failed (reported once) and later uploads are skipped.
        let mut upload: Option<Upload> = None;
        let mut started = false;
        for step in steps {
            match step {
                ToRemote::Invalid(message) => self.fail(message),
                ToRemote::FromRemote(source) => match self.invocation.remote_to_remote {
                    RemoteToRemote::ThroughLocal => self.relay(source, target).await,
                    RemoteToRemote::OnOrigin => self.copy_on_origin(source, target).await,
                },
                ToRemote::Upload(path) => {
                    if !started {
                        started = true;
                        match self.open_first_upload(steps, target).await {
                            FirstUpload::Spread(spread) => {
                                return self.upload_spread(*spread, target).await;
                            }
                            FirstUpload::Plain(opened) => upload = opened,
                        }
                    }
                    let Some(open) = upload.as_mut() else {
                        continue;
                    };
                    if let Err(error) = open.session.send(Path::new(path)).await
                        && let Some(Upload {
                            session,
                            completions,
                        }) = upload.take()
                    {
                        drop(session);
                        self.conclude(Err(error), completions).await;
                    }
                }
            }
        }
        if let Some(open) = upload {
            let closed = open.session.close().await;
            self.conclude(closed, open.completions).await;
        }
    }

    /// The local sources of an upload that may go over several channels
    /// (see `spread`): the built-in client in legacy mode, no `-l`, every
    /// operand local, and enough files to pay for it.
    fn spread_candidates(&self, steps: &[ToRemote], target: &Remote) -> Option<Vec<PathBuf>> {
        if self.uses_sftp(target)
            || self.limit().is_some()
            || !matches!(self.transport, Transport::Native(_))
        {
            return None;
        }
        let paths = steps
            .iter()
            .map(|step| match step {
                ToRemote::Upload(path) => Some(PathBuf::from(path)),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?;
        let recursive = self.invocation.recursive;
        walk::at_least(
            paths.iter().map(PathBuf::as_path),
            recursive,
            spread::SPREAD_MIN,
        )
        .then_some(paths)
    }

    /// The first upload's session, and for many files over a long link
    /// the helpers beside it (see `spread`): opened while it starts when
    /// the connection shows a long link, else after it when its go-ahead
    /// was slow.
    async fn open_first_upload(&mut self, steps: &[ToRemote], target: &Remote) -> FirstUpload<'a> {
        let candidates = self.spread_candidates(steps, target);
        let command = self.helper_command(target);
        let (transport, events) = (self.transport, self.events);
        let big = has_big_file(steps);
        let (mut upload, early) = {
            let early = async {
                match &candidates {
                    Some(paths) => {
                        let one_operand = paths.len() == 1;
                        let on = (target, command.as_os_str());
                        spread::open_early(transport, on, events, one_operand).await
                    }
                    None => spread::Early::NotFar,
                }
            };
            // On a server that runs one scp at a time, whichever of the
            // two starts second waits for the other: neither is waited
            // for long once the other has answered.
            let asked = std::time::Instant::now();
            let mut early = std::pin::pin!(early);
            let first = {
                let upload = std::pin::pin!(self.open_upload(target, big));
                match futures_util::future::select(upload, early.as_mut()).await {
                    Either::Left((upload, _)) => (upload, None),
                    // (Only a helper that started holds a session.)
                    Either::Right((early @ spread::Early::Directory(Some(_)), mut upload)) => {
                        let patience = patience(asked.elapsed());
                        match tokio::time::timeout(patience, upload.as_mut()).await {
                            Ok(upload) => (upload, Some(early)),
                            Err(_) => {
                                // The helper goes; the first channel then
                                // starts.
                                if let spread::Early::Directory(Some(channel)) = early {
                                    channel.completion.terminate().await;
                                }
                                (upload.await, Some(spread::Early::NoAnswer))
                            }
                        }
                    }
                    Either::Right((early, upload)) => (upload.await, Some(early)),
                }
            };
            match first {
                (upload, Some(early)) => (upload, early),
                (upload, None) => {
                    let took = self.go_ahead_time.unwrap_or_default();
                    let answered = tokio::time::timeout(patience(took), early).await;
                    (upload, answered.unwrap_or(spread::Early::NoAnswer))
                }
            }
        };
        let start = match early {
            spread::Early::Directory(asked) => Some(HelperStart::Directory(asked)),
            spread::Early::NotADirectory => Some(HelperStart::AfterRoot),
            spread::Early::NoAnswer => None,
            spread::Early::NotFar => self
                .go_ahead_time
                .is_some_and(|t| t >= spread::SPREAD_LATENCY)
                .then_some(HelperStart::Probe),
        };
        if let (Some(paths), Some(start)) = (candidates, start) {
            match upload {
                Some(Upload {
                    session: UploadSession::Scp(primary),
                    completions,
                }) => {
                    return FirstUpload::Spread(Box::new(SpreadUpload {
                        primary: *primary,
                        completions,
                        paths,
                        start,
                    }));
                }
                opened => {
                    // The first channel is not scp, or failed.
                    upload = opened;
                    if let HelperStart::Directory(Some(channel)) = start {
                        channel.completion.terminate().await;
                    }
                }
            }
        }
        FirstUpload::Plain(upload)
    }

    /// What helpers run: `scp -r -d -t target`. With one operand, `-d`
    /// makes the first of them tell whether the target is a directory
    /// already (then a tree goes inside it, and the helpers start by
    /// going in; else the tree takes its name).
    fn helper_command(&self, target: &Remote) -> OsString {
        let mut command = self.remote_command("-t", &target.path).into_vec();
        let role = command
            .windows(4)
            .position(|w| w == b" -t ")
            .unwrap_or(command.len());
        let mut flags = Vec::new();
        if !self.invocation.recursive {
            flags.extend_from_slice(b" -r");
        }
        if !self.target_must_be_directory {
            flags.extend_from_slice(b" -d");
        }
        command.splice(role..role, flags);
        OsString::from_vec(command)
    }

    /// An upload over the first channel and helpers (see `spread`).
    async fn upload_spread(&mut self, spread: SpreadUpload<'a>, target: &Remote) {
        let SpreadUpload {
            mut primary,
            mut completions,
            paths,
            start,
        } = spread;
        let paths = &paths[..];
        let command = self.helper_command(target);
        let (root_exists, opened, count) = match start {
            HelperStart::Directory(asked) => (
                true,
                asked.into_iter().map(|c| *c).collect(),
                spread::HELPERS,
            ),
            HelperStart::AfterRoot => (false, Vec::new(), spread::HELPERS),
            HelperStart::Probe if paths.len() == 1 => {
                // Only an answer says what the target is: with none (no
                // channel granted, no go-ahead in time), no helpers.
                let asked = spread::open_helper(self.transport, (target, &command), self.events);
                let took = self.go_ahead_time.unwrap_or_default();
                match tokio::time::timeout(patience(took), asked).await {
                    Ok((Some(true), Some(channel))) => (true, vec![channel], spread::HELPERS),
                    Ok((Some(false), _)) => (false, Vec::new(), spread::HELPERS),
                    _ => (true, Vec::new(), 0),
                }
            }
            HelperStart::Probe => (true, Vec::new(), spread::HELPERS),
        };
        let options = SourceOptions {
            recursive: true,
            preserve: self.invocation.preserve,
            limit: None,
        };
        let events = self.events;
        let (recursive, preserve) = (self.invocation.recursive, self.invocation.preserve);
        let (mut helpers, runs) = spread::helpers(
            self.transport,
            (target, &command),
            options,
            events,
            (root_exists, count),
            opened,
        );
        let first = async move {
            let sent = async {
                for path in paths {
                    let flags = (recursive, preserve);
                    spread_one(&mut primary, &mut helpers, path, root_exists, flags, events)
                        .await?;
                }
                // The helpers end once they have done what they were
                // given; what they gave back at the root is sent here.
                let left = helpers.finish().await;
                send_returned(&mut primary, &[], left, events).await?;
                Ok::<(), SessionError>(())
            }
            .await;
            match sent {
                Ok(()) => primary.close().await,
                Err(error) => Err(error),
            }
        };
        let (outcome, ends) =
            futures_util::future::join(first, futures_util::future::join_all(runs)).await;
        let used = ends
            .iter()
            .filter(|(outcome, completion)| completion.is_some() || outcome.is_err())
            .count();
        if self.events.verbose() {
            let channels = used + 1;
            let plural = if channels == 1 { "" } else { "s" };
            let line = format!("Upload over {channels} channel{plural}\n");
            self.events.debug(line.as_bytes());
        }
        let mut outcome = outcome;
        // Several channels lost with the connection say so once, as scp.
        let mut said: Vec<String> = outcome
            .as_ref()
            .err()
            .and_then(SessionError::message)
            .into_iter()
            .collect();
        for (ended, completion) in ends {
            match (ended, &mut outcome) {
                (Ok(summary), Ok(total)) => total.errors += summary.errors,
                (Ok(_), Err(_)) => {}
                (Err(error), _) => match error.message() {
                    Some(message) if said.contains(&message) => self.failed = true,
                    message => {
                        said.extend(message);
                        self.session_failed(&error);
                    }
                },
            }
            completions.extend(completion);
        }
        self.conclude(outcome, completions).await;
    }

    /// `-3`: both remote ends opened from here, the stream passed through.
    /// Each end speaks what it can: scp (the default), or SFTP with `-s`
    /// or where a host cannot run scp.
    async fn relay(&mut self, source: &Remote, target: &Remote) {
        let Some(from) = self.relay_origin(source).await else {
            return;
        };
        let Some(to) = self.relay_destination(target).await else {
            return from.channel().completion.terminate().await;
        };
        let events = self.events;
        let options = self.sftp_options();
        let relay_options = RelayOptions {
            recursive: self.invocation.recursive,
            filter: self
                .invocation
                .strict_filenames
                .then(|| NameFilter::for_request(source.path.as_bytes())),
            limit: self.limit(),
        };
        let must_be_directory = self.target_must_be_directory;
        let (from_scp, to_scp) = (
            matches!(from, RelayEnd::Scp(_)),
            matches!(to, RelayEnd::Scp(_)),
        );
        let (from, to) = (from.channel(), to.channel());
        let completions = vec![from.completion, to.completion];
        let (from, to) = ((from.reader, from.writer), (to.reader, to.writer));
        let outcome = match (from_scp, to_scp) {
            (true, true) => {
                let relay = Relay::new(from, to, relay_options, events).after_origin_go_ahead();
                relay.run().await
            }
            (true, false) => {
                async {
                    let mut destination = Sftp::start(to.0, to.1, options, events).await?;
                    let decided = destination
                        .upload_target(target.path.as_bytes(), must_be_directory)
                        .await?;
                    // The origin is sending already: it is cut short.
                    let Some(upload_target) = decided else {
                        return Err(SessionError::Refused);
                    };
                    let mut into = SftpDestination::new(&mut destination, upload_target);
                    let sent = relay_into(from, &mut into, relay_options, events).await?;
                    let received = destination.close().await?;
                    Ok(Summary {
                        errors: sent.errors + received.errors,
                    })
                }
                .await
            }
            (false, true) => {
                async {
                    let mut origin = Sftp::start(from.0, from.1, options, events).await?;
                    let sink_options = SourceOptions {
                        recursive: options.recursive,
                        preserve: options.preserve,
                        limit: None,
                    };
                    let mut into = Source::new(to.0, to.1, sink_options, events);
                    into.start().await?;
                    origin.relay_into(&mut into, source.path.as_bytes()).await?;
                    let sent = origin.close().await?;
                    let received = into.close().await?;
                    Ok(Summary {
                        errors: sent.errors + received.errors,
                    })
                }
                .await
            }
            (false, false) => {
                async {
                    let mut origin = Sftp::start(from.0, from.1, options, events).await?;
                    let mut destination = Sftp::start(to.0, to.1, options, events).await?;
                    let decided = destination
                        .upload_target(target.path.as_bytes(), must_be_directory)
                        .await?;
                    if let Some(upload_target) = decided {
                        let mut into = SftpDestination::new(&mut destination, upload_target);
                        origin.relay_into(&mut into, source.path.as_bytes()).await?;
                    }
                    let sent = origin.close().await?;
                    let received = destination.close().await?;
                    Ok(Summary {
                        errors: sent.errors + received.errors,
                    })
                }
                .await
            }
        };
        self.conclude(outcome, completions).await;
    }

    /// The origin of `-3`: a remote `scp -f` that has had its go-ahead
    /// (sent from here, to see whether it runs scp at all), or an SFTP
    /// channel.
    async fn relay_origin(&mut self, source: &Remote) -> Option<RelayEnd> {
        if !self.uses_sftp(source) {
            let command = self.remote_command("-f", &source.path);
            let mut from = match self.transport.exec(source, &command, self.events).await {
                Ok(channel) => channel,
                Err(message) => {
                    self.fail(&message);
                    return None;
                }
            };
            let _ = async {
                from.writer.write_all(b"\0").await?;
                from.writer.flush().await
            }
            .await;
            if let ScpRuns::Yes(channel) = self.scp_runs(source, from).await {
                return Some(RelayEnd::Scp(channel));
            }
        }
        let channel = self.open_sftp_channel(source).await?;
        Some(RelayEnd::Sftp(Box::new(channel)))
    }

    /// The destination of `-3`, on its own connection: the origin's
    /// channel is not read while the destination's is written (see Lane).
    /// A remote `scp -t` (its go-ahead still to come), or an SFTP channel.
    async fn relay_destination(&mut self, target: &Remote) -> Option<RelayEnd> {
        if !self.uses_sftp(target) {
            let command = self.remote_command("-t", &target.path);
            let opened = self
                .transport
                .open(
                    target,
                    Start::Command(&command),
                    self.events,
                    Lane::RelayDestination,
                )
                .await;
            let to = match opened {
                Ok(channel) => channel,
                Err(message) => {
                    self.fail(&message);
                    return None;
                }
            };
            if let ScpRuns::Yes(channel) = self.scp_runs(target, to).await {
                return Some(RelayEnd::Scp(channel));
            }
        }
        let opened = self
            .transport
            .open(
                target,
                Start::Subsystem("sftp"),
                self.events,
                Lane::RelayDestination,
            )
            .await;
        match opened {
            Ok(channel) => Some(RelayEnd::Sftp(Box::new(channel))),
            Err(message) => {
                self.fail(&message);
                None
            }
        }
    }

    /// `-R`: the origin host copies to the target itself, with its own scp
    /// and its own ssh setup (`scp [-v] [-r] [-p] [-d] src [user@]host:target`).
    async fn copy_on_origin(&mut self, source: &Remote, target: &Remote) {
        let mut command = self.remote_command("", &source.path).into_vec();
        command.push(b' ');
        if let Some(user) = &target.user {
            command.extend_from_slice(user.as_bytes());
            command.push(b'@');
        }
        if target.host.contains(':') {
            command.extend_from_slice(format!("[{}]", target.host).as_bytes());
        } else {
            command.extend_from_slice(target.host.as_bytes());
        }
        command.push(b':');
        command.extend_from_slice(target.path.as_bytes());
        let channel = match self
            .transport
            .exec(source, OsStr::from_bytes(&command), self.events)
            .await
        {
            Ok(channel) => channel,
            Err(message) => return self.fail(&message),
        };
        // Nothing to say to it (ssh -n); what it prints on stdout is not ours
        // to parse.
        drop(channel.writer);
        let mut reader = channel.reader;
        let _ = tokio::io::copy(&mut reader, &mut tokio::io::sink()).await;
        drop(reader);
        self.finished(channel.completion).await;
    }

    /// `big`: a source is big enough to be striped in SFTP mode.
    async fn open_upload(&mut self, target: &Remote, big: bool) -> Option<Upload<'a>> {
        if self.uses_sftp(target) {
            return self.open_sftp_upload(target, big).await;
        }
        let command = self.remote_command("-t", &target.path);
        let channel = match self.transport.exec(target, &command, self.events).await {
            Ok(channel) => channel,
            Err(message) => {
                self.fail(&message);
                return None;
            }
        };
        let asked = std::time::Instant::now();
        let channel = match self.scp_runs(target, channel).await {
            ScpRuns::Yes(channel) => *channel,
            ScpRuns::NoScp => return self.open_sftp_upload(target, big).await,
        };
        let options = SourceOptions {
            recursive: self.invocation.recursive,
            preserve: self.invocation.preserve,
            limit: self.limit(),
        };
        let mut source = Source::new(channel.reader, channel.writer, options, self.events);
        if let Err(error) = source.start().await {
            drop(source);
            self.conclude(Err(error), vec![channel.completion]).await;
            return None;
        }
        self.go_ahead_time = Some(asked.elapsed());
        Some(Upload {
            session: UploadSession::Scp(Box::new(source)),
            completions: vec![channel.completion],
        })
    }

    /// An SFTP session for uploads, its target decided as scp's sink
    /// decides it.
    async fn open_sftp_upload(&mut self, target: &Remote, big: bool) -> Option<Upload<'a>> {
        let channel = self.open_sftp_channel(target).await?;
        let mut sftp = match Sftp::start(
            channel.reader,
            channel.writer,
            self.sftp_options(),
            self.events,
        )
        .await
        {
            Ok(sftp) => sftp,
            Err(error) => {
                self.conclude(Err(error), vec![channel.completion]).await;
                return None;
            }
        };
        let decided = sftp
            .upload_target(target.path.as_bytes(), self.target_must_be_directory)
            .await;
        match decided {
            Ok(Some(upload_target)) => {
                let mut completions = vec![channel.completion];
                // Over a long link, a big file goes over several sessions.
                // (Not through -S or -D: each session would be a program,
                // and a login, of its own.)
                if big
                    && self.limit().is_none()
                    && matches!(self.transport, Transport::Native(_))
                    && sftp.handshake_time() >= STRIPE_LATENCY
                {
                    let (stripes, ended) = self.open_stripes(target).await;
                    sftp.add_stripes(stripes);
                    completions.extend(ended);
                }
                Some(Upload {
                    session: UploadSession::Sftp(Box::new(sftp), upload_target),
                    completions,
                })
            }
            Ok(None) => {
                let closed = sftp.close().await;
                self.conclude(closed, vec![channel.completion]).await;
                None
            }
            Err(error) => {
                drop(sftp);
                self.conclude(Err(error), vec![channel.completion]).await;
                None
            }
        }
    }

    /// Up to STRIPES more SFTP sessions with `target`'s server, opened at
    /// once, as many as it grants (a server's MaxSessions may refuse some:
    /// fewer are used, said under -v).
    async fn open_stripes(&mut self, target: &Remote) -> (Vec<RemoteSftp<'a>>, Vec<Completion>) {
        let (transport, events, options) = (self.transport, self.events, self.sftp_options());
        let opening = (0..STRIPES).map(|_| async move {
            let channel = transport
                .open(target, Start::Subsystem("sftp"), events, Lane::Shared)
                .await?;
            match Sftp::start(channel.reader, channel.writer, options, events).await {
                Ok(stripe) => Ok((stripe, channel.completion)),
                Err(error) => {
                    channel.completion.terminate().await;
                    Err(error.to_string())
                }
            }
        });
        let (mut stripes, mut completions, mut refused) = (Vec::new(), Vec::new(), None);
        for opened in futures_util::future::join_all(opening).await {
            match opened {
                Ok((stripe, completion)) => {
                    stripes.push(stripe);
                    completions.push(completion);
                }
                Err(why) => refused = refused.or(Some(why)),
            }
        }
        if self.events.verbose() {
            let line = match refused {
                None => format!("SFTP: big files go over {} sessions\n", stripes.len() + 1),
                Some(why) => format!(
                    "SFTP: {} of {STRIPES} more sessions opened ({why}); big files go over {}\n",
                    stripes.len(),
                    stripes.len() + 1
                ),
            };
            self.events.debug(line.as_bytes());
        }
        (stripes, completions)
    }

    async fn open_sftp_channel(&mut self, remote: &Remote) -> Option<crate::transport::Channel> {
        let opened = self
            .transport
            .open(remote, Start::Subsystem("sftp"), self.events, Lane::Shared)
            .await;
        match opened {
            Ok(channel) => Some(channel),
            Err(message) => {
                self.fail(&message);
                None
            }
        }
    }

    fn sftp_options(&self) -> SftpOptions {
        SftpOptions {
            recursive: self.invocation.recursive,
            preserve: self.invocation.preserve,
            limit: self.limit(),
            buffer: self.invocation.sftp_buffer,
            requests: self.invocation.sftp_requests.unwrap_or(DEFAULT_REQUESTS),
            umask: self.umask,
        }
    }

    /// A download over SFTP: one session per remote source.
    async fn download_sftp(&mut self, source: &Remote, target: &Path) {
        let Some(channel) = self.open_sftp_channel(source).await else {
            return;
        };
        let outcome = async {
            let mut sftp = Sftp::start(
                channel.reader,
                channel.writer,
                self.sftp_options(),
                self.events,
            )
            .await?;
            sftp.download(source.path.as_bytes(), target).await?;
            sftp.close().await
        }
        .await;
        self.conclude(outcome, vec![channel.completion]).await;
    }

    async fn download_all(&mut self, steps: &[ToLocal], target: &Path) {
        if self.target_must_be_directory
            && let Err(message) = require_directory(target)
        {
            return self.fail(&message);
        }
        for step in steps {
            match step {
                ToLocal::Invalid(message) => self.fail(message),
                ToLocal::Download(source) => self.download(source, target).await,
                ToLocal::Copy(source) => self.copy_locally(Path::new(source), target).await,
            }
        }
    }

    async fn download(&mut self, source: &Remote, target: &Path) {
        if self.uses_sftp(source) {
            return self.download_sftp(source, target).await;
        }
        let command = self.remote_command("-f", &source.path);
        let mut channel = match self.transport.exec(source, &command, self.events).await {
            Ok(channel) => channel,
            Err(message) => return self.fail(&message),
        };
        // The go-ahead first: `scp -f` says nothing before it. (A remote
        // side that has ended already cannot take it: what it said and
        // its status tell why, below.)
        let _ = async {
            channel.writer.write_all(b"\0").await?;
            channel.writer.flush().await
        }
        .await;
        let channel = match self.scp_runs(source, channel).await {
            ScpRuns::Yes(channel) => *channel,
            ScpRuns::NoScp => return self.download_sftp(source, target).await,
        };
        let options = SinkOptions {
            recursive: self.invocation.recursive,
            preserve: self.invocation.preserve,
            // Checked once for the whole run, before anything was copied.
            target_must_be_directory: false,
            umask: self.umask,
            filter: self
                .invocation
                .strict_filenames
                .then(|| NameFilter::for_request(source.path.as_bytes())),
            limit: self.limit(),
            replies_ahead: REPLIES_AHEAD,
        };
        let sink = Sink::new(channel.reader, channel.writer, options, self.events).after_go_ahead();
        let outcome = sink.run(target).await;
        self.conclude(outcome, vec![channel.completion]).await;
    }

    /// Whether `remote` is reached over SFTP: `-s`, or a host found to
    /// have no scp earlier in the run.
    fn uses_sftp(&self, remote: &Remote) -> bool {
        self.invocation.sftp || self.without_scp.contains(&host_key(remote))
    }

    /// Reads what a remote scp says first, to tell a host that cannot run
    /// scp at all (see [`ScpRuns`]).
    async fn scp_runs(&mut self, remote: &Remote, mut channel: Channel) -> ScpRuns {
        channel.completion.hold_stderr();
        let first = first_output(&mut channel.reader).await;
        let sftp_only = match first {
            First::Output(bytes) => {
                let rest = std::mem::replace(&mut channel.reader, Box::pin(tokio::io::empty()));
                channel.reader = Box::pin(std::io::Cursor::new(bytes).chain(rest));
                return ScpRuns::Yes(Box::new(channel));
            }
            First::SftpOnly => true,
            First::Nothing => false,
        };
        drop(channel.writer);
        drop(channel.reader);
        let (status, said) = channel.completion.ended_silently().await;
        let said_banner = sftp_only;
        // sshd ends an SFTP-only session with status 1.
        let sftp_only = sftp_only && status == Some(1);
        if !sftp_only && (said_banner || status != Some(127)) {
            // It ran: the engine sees what it sent (all of it, or
            // nothing), as it would have, and its status counts as it
            // would have.
            if !said.is_empty() {
                report::remote(&said);
            }
            let output: &'static [u8] = if said_banner { SFTP_ONLY } else { b"" };
            return ScpRuns::Yes(Box::new(Channel {
                reader: Box::pin(output),
                writer: Box::pin(tokio::io::sink()),
                completion: Completion::Ended(status),
            }));
        }
        if self.events.verbose() {
            let why = if sftp_only {
                "the server allows only SFTP".to_owned()
            } else {
                "it has no scp (exit status 127)".to_owned()
            };
            let line = format!(
                "{} cannot run scp ({why}): using SFTP\n",
                crate::escape::for_terminal(remote.host.as_bytes())
            );
            self.events.debug(line.as_bytes());
            if !said.is_empty() {
                self.events.debug(&said);
            }
        }
        self.without_scp.insert(host_key(remote));
        ScpRuns::NoScp
    }

    /// Both ends local: rscp's own source and sink, joined by a pipe in
    /// memory, so the semantics are those of a remote copy and no shell or
    /// `cp` is involved.
    async fn copy_locally(&mut self, source: &Path, target: &Path) {
        if self.invocation.recursive
            && let Some(inside) = copies_into_itself(source, target)
        {
            return self.fail(&format!(
                "cannot copy a directory, '{}', into itself, '{}'",
                path_for_terminal(source),
                path_for_terminal(&inside),
            ));
        }
        let (source_end, sink_end) = tokio::io::duplex(2 * CHUNK);
        let (source_reader, source_writer) = tokio::io::split(source_end);
        let (sink_reader, sink_writer) = tokio::io::split(sink_end);
        let sending = LocalEnd {
            reporter: self.events,
            sending: true,
        };
        let receiving = LocalEnd {
            reporter: self.events,
            sending: false,
        };
        let mut sender = Source::new(
            source_reader,
            source_writer,
            SourceOptions {
                recursive: self.invocation.recursive,
                preserve: self.invocation.preserve,
                limit: self.limit(),
            },
            &sending,
        );
        let receiver = Sink::new(
            sink_reader,
            sink_writer,
            SinkOptions {
                recursive: self.invocation.recursive,
                preserve: self.invocation.preserve,
                target_must_be_directory: false,
                umask: self.umask,
                filter: None,
                // Paced once, at the sending end.
                limit: None,
                replies_ahead: 0,
            },
            &receiving,
        );
        let send = async {
            sender.start().await?;
            sender.send(source).await?;
            sender.close().await
        };
        let (sent, received) = tokio::join!(send, receiver.run(target));
        for outcome in [sent, received] {
            match outcome {
                Ok(summary) => self.failed |= summary.errors > 0,
                Err(error) => self.session_failed(&error),
            }
        }
    }

    /// The one place a session ends: its errors count, and its remote
    /// sides are waited for (it went well) or terminated (it broke, and a
    /// misbehaving peer must not keep rscp waiting).
    async fn conclude(
        &mut self,
        outcome: Result<Summary, SessionError>,
        remote_sides: Vec<Completion>,
    ) {
        match outcome {
            Ok(summary) => {
                self.failed |= summary.errors > 0;
                for completion in remote_sides {
                    self.finished(completion).await;
                }
            }
            Err(error) => {
                self.session_failed(&error);
                for completion in remote_sides {
                    completion.terminate().await;
                }
            }
        }
    }

    /// Waits for a remote side to end; a failure fails the run, and is
    /// told unless the remote side (or an ssh that could not connect) has
    /// said why itself.
    async fn finished(&mut self, completion: Completion) {
        match completion.wait().await {
            Ok(()) => {}
            Err(None) => self.failed = true,
            Err(Some(message)) => self.fail(&message),
        }
    }

    /// `-l` in bytes per second.
    fn limit(&self) -> Option<u64> {
        self.invocation.limit.map(bytes_per_second)
    }

    fn session_failed(&mut self, error: &SessionError) {
        self.failed = true;
        if let Some(message) = error.message() {
            report::error(&message);
        }
    }

    /// `scp [-v] [-r] [-p] [-d] -t|-f [-- ]path` (no role for `-R`'s
    /// `scp ... path host:target`). The path is not quoted: the remote
    /// shell expands it, as with scp.
    fn remote_command(&self, role: &str, path: &OsStr) -> OsString {
        let inv = self.invocation;
        let mut command = String::from("scp");
        for (on, flag) in [
            (inv.verbose > 0, " -v"),
            (inv.recursive, " -r"),
            (inv.preserve, " -p"),
            (self.target_must_be_directory, " -d"),
        ] {
            if on {
                command.push_str(flag);
            }
        }
        if !role.is_empty() {
            command.push(' ');
            command.push_str(role);
        }
        command.push(' ');
        if path.as_bytes().starts_with(b"-") {
            command.push_str("-- ");
        }
        let mut bytes = command.into_bytes();
        bytes.extend_from_slice(path.as_bytes());
        OsString::from_vec(bytes)
    }
}

/// For `-r` copies: the directory that would be created inside the source
/// itself (which would never end), if that is what `target` asks for.
fn copies_into_itself(source: &Path, target: &Path) -> Option<PathBuf> {
    let source_real = fs::canonicalize(source).ok()?;
    if !source_real.is_dir() {
        return None;
    }
    let destination = if target.is_dir() {
        target.join(source_real.file_name()?)
    } else {
        target.to_owned()
    };
    let parent = match destination.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let destination_real = fs::canonicalize(parent)
        .ok()?
        .join(destination.file_name()?);
    (destination_real != source_real && destination_real.starts_with(&source_real))
        .then_some(destination)
}
