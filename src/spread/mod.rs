//! Legacy uploads of many files over several exec channels of one
//! connection. `scp -t` must accept a file's header before its data, so
//! one channel pays a round trip per file. Helpers, more `scp -t`
//! sessions with the same target, take files while the first channel
//! walks the trees and makes their directories; they go into a directory
//! only once it is made, and a directory is finished (its `-p` times, a
//! mode that locks its owner out) only once they are done in it. A
//! helper that fails hands what it still held back to the first channel.

mod stall;

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot, watch};

use crate::engine::{DataWrite, SessionError, Summary};
use crate::escape::path_for_terminal;
use crate::events::Events;
use crate::operand::Remote;
use crate::scp::{Source, SourceOptions};
use crate::transport::ssh::Lane;
use crate::transport::{Channel, Completion, Start, Transport};

use stall::{Pulse, STALL_LIMIT, Watched};

/// Helpers besides the first channel (sshd's MaxSessions is 10).
pub const HELPERS: usize = 6;

/// Files from this many up are spread.
pub const SPREAD_MIN: u64 = 16;

/// The first channel's go-ahead time from which helpers pay.
pub const SPREAD_LATENCY: std::time::Duration = std::time::Duration::from_millis(20);

/// Files waiting per helper: when all are full, the first channel sends
/// the file itself.
const QUEUE: usize = 4;

/// The directories from a helper's root to a file: names and modes (owner
/// rwx added, as the first channel made them).
pub type Way = Vec<(Vec<u8>, u32)>;

pub enum Job {
    File {
        way: Way,
        path: PathBuf,
        file: File,
        meta: Box<Metadata>,
    },
    /// Everything handed over so far answered, and back at the root.
    Sync(oneshot::Sender<()>),
}

/// The first channel's side: where files are handed over.
pub struct Helpers {
    queues: Vec<Queue>,
    next: usize,
    /// Set once the helpers may start (their root exists).
    ready: watch::Sender<bool>,
    /// Files given back by helpers that failed.
    returned: mpsc::UnboundedReceiver<Job>,
    /// Given back, and not yet where the first channel can send them.
    held: Vec<Job>,
    /// Set once a helper stopped answering: no more files are handed
    /// over, and every helper gives back what it holds.
    cut: Arc<AtomicBool>,
}

/// One helper, seen from the first channel.
struct Queue {
    jobs: mpsc::Sender<Job>,
    started: Arc<AtomicBool>,
    /// Set once a helper that failed has given back all it held.
    settled: watch::Receiver<bool>,
}

impl Helpers {
    /// Hands a file to a helper that has started and has room; gives it
    /// back when none has.
    pub fn offer(&mut self, mut job: Job) -> Option<Job> {
        if self.cut.load(Ordering::Acquire) {
            return Some(job);
        }
        let count = self.queues.len();
        for i in 0..count {
            let at = (self.next + i) % count;
            let queue = &self.queues[at];
            if !queue.started.load(Ordering::Acquire) {
                continue;
            }
            match queue.jobs.try_send(job) {
                Ok(()) => {
                    self.next = at + 1;
                    return None;
                }
                Err(
                    mpsc::error::TrySendError::Full(back) | mpsc::error::TrySendError::Closed(back),
                ) => job = back,
            }
        }
        Some(job)
    }

    /// Waits until every helper has had all it was handed answered, or
    /// has given it back.
    pub async fn sync(&self) {
        let mut acks = Vec::new();
        let mut failing = Vec::new();
        // (One that has not started was handed nothing, and one that has
        // stopped gave it all back.)
        for queue in &self.queues {
            if !queue.started.load(Ordering::Acquire) {
                continue;
            }
            let (done, ack) = oneshot::channel();
            if queue.jobs.send(Job::Sync(done)).await.is_ok() {
                acks.push(ack);
            } else {
                failing.push(queue.settled.clone());
            }
        }
        for ack in acks {
            let _ = ack.await;
        }
        for mut settled in failing {
            let _ = settled.wait_for(|&done| done).await;
        }
    }

    /// The files given back so far that go in directory `way`.
    pub fn returned_to(&mut self, way: &[(Vec<u8>, u32)]) -> Vec<Job> {
        self.take_returned(|there| there == way)
    }

    /// The files given back so far that go in directory `way` or below.
    pub fn returned_under(&mut self, way: &[(Vec<u8>, u32)]) -> Vec<Job> {
        self.take_returned(|there| there.starts_with(way))
    }

    fn take_returned(&mut self, wanted: impl Fn(&Way) -> bool) -> Vec<Job> {
        while let Ok(job) = self.returned.try_recv() {
            self.held.push(job);
        }
        if self.held.is_empty() {
            return Vec::new();
        }
        let (taken, kept) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|job| matches!(job, Job::File { way, .. } if wanted(way)));
        self.held = kept;
        taken
    }

    /// No more files: the helpers end once they are done, and what they
    /// gave back is all here.
    pub async fn finish(self) -> Vec<Job> {
        let Helpers {
            queues,
            ready,
            mut returned,
            mut held,
            ..
        } = self;
        drop(queues);
        drop(ready);
        while let Some(job) = returned.recv().await {
            held.push(job);
        }
        held
    }

    /// The helpers' root exists: they may open their channels.
    pub fn start(&self) {
        let _ = self.ready.send(true);
    }
}

/// What a helper did: its session's outcome and its remote side.
pub type HelperEnd = (Result<Summary, SessionError>, Option<Completion>);

/// The helpers, ready to run, and the first channel's handle on them.
/// `root_exists`: their root is there already (else [`Helpers::start`]
/// says when). `opened`: channels already open and started, used by the
/// first helpers; the others open their own once the root exists.
pub fn helpers<'a>(
    transport: &'a Transport,
    (target, command): (&'a Remote, &'a OsStr),
    options: SourceOptions,
    events: &'a dyn Events,
    (root_exists, count): (bool, usize),
    opened: Vec<Channel>,
) -> (Helpers, Vec<impl Future<Output = HelperEnd> + 'a>) {
    let (ready, ready_seen) = watch::channel(root_exists);
    let (give_back, returned) = mpsc::unbounded_channel();
    let cut = Arc::new(AtomicBool::new(false));
    let mut queues = Vec::new();
    let mut runs = Vec::new();
    let mut opened = opened.into_iter();
    for _ in 0..count {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let started = Arc::new(AtomicBool::new(false));
        let (settle, settled) = watch::channel(false);
        queues.push(Queue {
            jobs: queue,
            started: started.clone(),
            settled,
        });
        let run = Helper {
            transport,
            target,
            command,
            options,
            events,
            give_back: give_back.clone(),
            cut: cut.clone(),
        }
        .run(ready_seen.clone(), jobs, opened.next(), (started, settle));
        runs.push(run);
    }
    let helpers = Helpers {
        queues,
        next: 0,
        ready,
        returned,
        held: Vec::new(),
        cut,
    };
    (helpers, runs)
}

struct Helper<'a> {
    transport: &'a Transport,
    target: &'a Remote,
    command: &'a OsStr,
    options: SourceOptions,
    events: &'a dyn Events,
    give_back: mpsc::UnboundedSender<Job>,
    cut: Arc<AtomicBool>,
}

impl<'a> Helper<'a> {
    async fn run(
        self,
        mut ready: watch::Receiver<bool>,
        mut jobs: mpsc::Receiver<Job>,
        first: Option<Channel>,
        (started, settle): (Arc<AtomicBool>, watch::Sender<bool>),
    ) -> HelperEnd {
        let channel = match first {
            Some(channel) => channel,
            None => {
                // Gone (the first channel is done) before the root came.
                if ready.wait_for(|&ok| ok).await.is_err() {
                    return (Ok(Summary::default()), None);
                }
                // A helper that cannot start is not used (the first
                // channel sends everything then), nor one still starting
                // when the first channel is done.
                let on = (self.target, self.command);
                let opened = open_helper(self.transport, on, self.events);
                let done = async { while ready.changed().await.is_ok() {} };
                tokio::select! {
                    opened = opened => match opened {
                        (_, Some(channel)) => channel,
                        _ => return (Ok(Summary::default()), None),
                    },
                    () = done => return (Ok(Summary::default()), None),
                }
            }
        };
        // Work to take up again on a new channel if this one is lost.
        let mut resend = VecDeque::new();
        let mut lost = None;
        let mut channel = channel;
        let mut reopen = true;
        // Whether this helper's own channel stopped answering.
        let mut silent = false;
        // Problems reported on channels of this helper that ended.
        let mut counted = 0;
        started.store(true, Ordering::Release);
        let error = loop {
            let Channel {
                reader,
                writer,
                completion,
            } = channel;
            let pulse = Arc::new(Pulse::new(self.cut.clone()));
            let reader = Watched::new(reader, pulse.clone(), STALL_LIMIT);
            let writer = Watched::new(writer, pulse.clone(), STALL_LIMIT);
            let outcome = {
                let mut source = Source::new(reader, writer, self.options, self.events);
                match self.work(&mut source, &mut jobs, &mut resend, &pulse).await {
                    Ok(()) => source.close().await,
                    Err(error) => {
                        // (Problems reported on a channel that then ends
                        // still count.)
                        counted += source.summary().errors;
                        Err(error)
                    }
                }
            };
            let error = match outcome {
                // A channel lost on the way is still a failure of the run.
                Ok(summary) if !pulse.cut() => {
                    let summary = Summary {
                        errors: summary.errors + counted,
                    };
                    return (lost.map_or(Ok(summary), Err), Some(completion));
                }
                // All answered, but the remote side is not waited for: it
                // (or another helper's) stopped answering.
                Ok(summary) => {
                    if pulse.stalled() {
                        self.said_silent();
                    }
                    completion.terminate().await;
                    let summary = Summary {
                        errors: summary.errors + counted,
                    };
                    return (lost.map_or(Ok(summary), Err), None);
                }
                // A read or write the watch failed (a peer that failed or
                // broke the protocol meanwhile still says so).
                Err(SessionError::LostConnection) if pulse.cut() => {
                    silent = pulse.stalled();
                    SessionError::NoAnswer(STALL_LIMIT)
                }
                Err(error) => error,
            };
            completion.terminate().await;
            // Only a channel that is gone is tried again, once: a peer
            // that failed, broke the protocol or went silent is not asked
            // twice.
            if error != SessionError::LostConnection || !reopen {
                break error;
            }
            reopen = false;
            let on = (self.target, self.command);
            let opened =
                tokio::time::timeout(STALL_LIMIT, open_helper(self.transport, on, self.events));
            match opened.await {
                Ok((_, Some(next))) => {
                    if self.events.verbose() {
                        self.events
                            .debug(b"Helper channel lost: its files go over a new one\n");
                    }
                    lost = Some(error);
                    channel = next;
                }
                _ => break error,
            }
        };
        // What it still held goes back to the first channel, all of it
        // before any sync waiting on this helper is let go.
        jobs.close();
        let mut syncs = Vec::new();
        while let Some(job) = next_job(&mut resend, &mut jobs).await {
            match job {
                Job::File { .. } => {
                    // (Gone only if the whole upload is: then its
                    // first channel has failed and said so.)
                    let _ = self.give_back.send(job);
                }
                Job::Sync(done) => syncs.push(done),
            }
        }
        let _ = settle.send(true);
        started.store(false, Ordering::Release);
        drop(syncs);
        if let SessionError::NoAnswer(_) = error {
            // Cut by us, and nothing lost: the first channel sends it.
            if silent {
                self.said_silent();
            }
            let summary = Summary { errors: counted };
            return (lost.map_or(Ok(summary), Err), None);
        }
        (Err(error), None)
    }

    fn said_silent(&self) {
        if self.events.verbose() {
            self.events
                .debug(b"Helper channel stopped answering: the first channel sends the rest\n");
        }
    }

    /// Does the jobs given (those to resend first). On an error, what may
    /// not have arrived (the last file whose data is not answered yet, and
    /// the job it was on) goes back to the front of `resend`.
    async fn work<R, W>(
        &self,
        source: &mut Source<'_, R, W>,
        jobs: &mut mpsc::Receiver<Job>,
        resend: &mut VecDeque<Job>,
        pulse: &Pulse,
    ) -> Result<(), SessionError>
    where
        R: tokio::io::AsyncRead + Unpin,
        W: DataWrite,
    {
        let mut at: Way = Vec::new();
        // A copy of the last file sent, until its data is answered.
        let mut unanswered: Option<Job> = None;
        while let Some(job) = next_job(resend, jobs).await {
            // (Waiting for work is not waiting for the peer.)
            pulse.beat();
            match job {
                Job::File {
                    way,
                    path,
                    file,
                    meta,
                } => {
                    let spare = file.try_clone().ok().map(|copy| Job::File {
                        way: way.clone(),
                        path: path.clone(),
                        file: copy,
                        meta: meta.clone(),
                    });
                    let sent = async {
                        if go(source, &mut at, &way).await? {
                            source.send_walk_file(&path, file, &meta).await?;
                            return Ok(true);
                        }
                        let message =
                            format!("{}: not sent: directory refused", path_for_terminal(&path));
                        self.events.error(&message);
                        Ok(false)
                    }
                    .await;
                    match sent {
                        Ok(sent) => {
                            unanswered = spare.filter(|_| sent && source.owes_replies());
                        }
                        Err(error) => {
                            match spare {
                                Some(spare) => resend.push_front(spare),
                                None => {
                                    let message =
                                        format!("{}: not sent: {error}", path_for_terminal(&path));
                                    self.events.error(&message);
                                    source.count_problem();
                                }
                            }
                            if let Some(unanswered) = unanswered {
                                resend.push_front(unanswered);
                            }
                            return Err(error);
                        }
                    }
                }
                Job::Sync(done) => match self.settle_at_root(source, &mut at).await {
                    Ok(()) => {
                        unanswered = None;
                        let _ = done.send(());
                    }
                    Err(error) => {
                        resend.push_front(Job::Sync(done));
                        if let Some(unanswered) = unanswered {
                            resend.push_front(unanswered);
                        }
                        return Err(error);
                    }
                },
            }
        }
        if let Err(error) = self.settle_at_root(source, &mut at).await {
            if let Some(unanswered) = unanswered {
                resend.push_front(unanswered);
            }
            return Err(error);
        }
        Ok(())
    }

    /// Back at the root, everything sent answered.
    async fn settle_at_root<R, W>(
        &self,
        source: &mut Source<'_, R, W>,
        at: &mut Way,
    ) -> Result<(), SessionError>
    where
        R: tokio::io::AsyncRead + Unpin,
        W: DataWrite,
    {
        go(source, at, &Vec::new()).await?;
        source.settle().await
    }
}

/// What is to resend first, then what the first channel hands over.
async fn next_job(resend: &mut VecDeque<Job>, jobs: &mut mpsc::Receiver<Job>) -> Option<Job> {
    match resend.pop_front() {
        Some(job) => Some(job),
        None => jobs.recv().await,
    }
}

/// The round trip from which helpers are opened beside the first
/// channel, before it has answered (their start then overlaps its own).
pub const LONG_LINK: std::time::Duration = std::time::Duration::from_millis(10);

/// What is known of a spread upload's target before the first channel
/// has answered.
pub enum Early {
    /// The link is short (or not measured): nothing was opened.
    NotFar,
    /// A directory: helpers may start at once. With one operand, the
    /// helper that asked (started and ready).
    Directory(Option<Box<Channel>>),
    /// Not a directory (yet): helpers can only start once the first
    /// channel has made it.
    NotADirectory,
    /// The helper that asked could not start.
    NoAnswer,
}

/// Once the first channel's connection shows a long link, asks the target
/// beside it. `one_operand`: the target may not be a directory, and the
/// first helper's go-ahead (it runs with `-d`) says whether it is;
/// several operands need a directory.
pub async fn open_early(
    transport: &Transport,
    (target, command): (&Remote, &OsStr),
    events: &dyn Events,
    one_operand: bool,
) -> Early {
    let far = transport.round_trip(target).await >= Some(LONG_LINK);
    if !far {
        return Early::NotFar;
    }
    if !one_operand {
        return Early::Directory(None);
    }
    match open_helper(transport, (target, command), events).await {
        (Some(true), Some(channel)) => Early::Directory(Some(Box::new(channel))),
        (Some(false), _) => Early::NotADirectory,
        _ => Early::NoAnswer,
    }
}

/// Opens a helper and reads its go-ahead; the channel only when it
/// answered yes.
pub async fn open_helper(
    transport: &Transport,
    (target, command): (&Remote, &OsStr),
    events: &dyn Events,
) -> (Option<bool>, Option<Channel>) {
    let opened = transport
        .open(target, Start::Command(command), events, Lane::Shared)
        .await;
    let Ok(mut channel) = opened else {
        return (None, None);
    };
    let answer = go_ahead(&mut channel).await;
    if answer == Some(true) {
        return (answer, Some(channel));
    }
    channel.completion.terminate().await;
    (answer, None)
}

/// A helper's go-ahead, read quietly (its stderr until then dropped): `Some(true)`
/// for `\0`, `Some(false)` for a refusal (for `-d`: the target is not a
/// directory), `None` for no answer.
async fn go_ahead(channel: &mut Channel) -> Option<bool> {
    // What the remote shell says at the start was shown once, by the
    // first channel.
    channel.completion.drop_startup_stderr();
    let mut first = [1u8];
    match channel.reader.read(&mut first).await {
        Ok(1) => Some(first[0] == 0),
        _ => None,
    }
}

/// Moves a helper from the directory it is in to `way`: out with `E`,
/// in with `D`. False if a directory was refused.
pub async fn go<R, W>(
    source: &mut Source<'_, R, W>,
    at: &mut Way,
    way: &Way,
) -> Result<bool, SessionError>
where
    R: tokio::io::AsyncRead + Unpin,
    W: DataWrite,
{
    let common = at
        .iter()
        .zip(way)
        .take_while(|(here, there)| here.0 == there.0)
        .count();
    while at.len() > common {
        source.send_walk_end().await?;
        at.pop();
    }
    for (name, mode) in &way[common..] {
        if !source.enter_existing(name, *mode).await? {
            return Ok(false);
        }
        at.push((name.clone(), *mode));
    }
    Ok(true)
}
