//! The SFTP engine: uploads and downloads over an SFTP v3 session, with
//! several requests in flight per file, pure of sockets and terminals like
//! the scp engine. A command line means what it means in legacy mode: the
//! remote path is read as the remote shell would read it (quotes, braces,
//! globs, `~`), a target directory is used as scp's sink uses it, and every
//! name the server sends is checked before it touches the disk.
//!
//! Written here rather than on russh-sftp: its handles and names are
//! strings (OpenSSH's binary handles fail), its flush waits for every
//! write, and it cannot keep requests in flight across files.

pub mod codec;
mod paths;
mod relay;
pub mod session;

use std::fs::{File, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::AsyncRead;

use crate::engine::{DataWrite, Destination, SessionError, Summary};
use crate::escape::for_terminal;
use crate::events::{Events, FileId};
use crate::local::receive::{ReceivedDirectory, Receiving, Times};
use crate::local::walk::{Step, Walk, last_component};
use crate::local::{Pacer, blocking};
use crate::scp::names::Component;
use codec::{Attrs, Reply, Request};
pub use paths::join;
pub use relay::SftpDestination;
use session::{Session, status_text, unexpected};

/// `-X nrequests` default: requests in flight per file (scp's default).
pub const DEFAULT_REQUESTS: usize = 64;

/// Data in flight per file, at most, whatever `-X nrequests` says: memory
/// stays flat (what arrives out of order is held up to this), and for
/// uploads sshd's window (2 MiB per channel) is full long before. For
/// downloads it is what a round trip can bring: 16 MiB is 340 MB/s at
/// 48 ms.
const MAX_IN_FLIGHT: u64 = 16 * 1024 * 1024;

/// The most entries one remote directory may list, and the most bytes
/// their names may take in all.
const MAX_ENTRIES: usize = 1 << 20;
const MAX_LISTING_BYTES: usize = 64 << 20;

/// How deep a remote tree may go under `-r`.
const MAX_DEPTH: usize = 1024;

/// Mode bits `-p` carries in SFTP mode, as OpenSSH's SFTP mode: no
/// setuid or setgid from (or to) a server, the sticky bit on directories
/// only.
const FILE_MODE_BITS: u32 = 0o777;
const DIRECTORY_MODE_BITS: u32 = 0o1777;

/// The longest handle a server may give (the protocol's limit).
const MAX_HANDLE: usize = 256;

/// The text kept of a status that came before it was asked for.
const EARLY_STATUS_TEXT: usize = 1024;

/// Files from this size up are striped over the sessions given for it.
pub const STRIPE_MIN: u64 = 32 * 1024 * 1024;

/// Where writing a file's data stopped, why the local file could not be
/// read, why the server refused a write, and the WRITEs unanswered.
type Written = (u64, Option<String>, Option<String>, Vec<u32>);

/// Files whose OPENs go out together, in an upload (each holds a local
/// file open too). A download takes what the server can hold.
const FILES_AHEAD: usize = 64;

/// The most replies left unawaited at once (see [`Deferred`]).
const MAX_DEFERRED: usize = 4096;

/// A reply rscp does not wait for (the last WRITEs, the size, the CLOSE of
/// a file): checked when it comes, while the next files move, and its
/// error reported under the file's name.
struct Deferred {
    /// Which file (one error per file is reported).
    file: u64,
    path: Vec<u8>,
    /// What the request did, for the message ("" for a write).
    what: &'static str,
}

#[derive(Debug, Clone, Copy)]
pub struct SftpOptions {
    pub recursive: bool,
    pub preserve: bool,
    /// `-l`, in bytes per second.
    pub limit: Option<u64>,
    /// `-X buffer`: data per READ and WRITE.
    pub buffer: Option<u32>,
    /// `-X nrequests`.
    pub requests: usize,
    pub umask: u32,
}

/// Where uploads go, decided once per run as scp's sink decides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadTarget {
    /// An existing directory: each source goes inside it.
    Directory(Vec<u8>),
    /// A path that is not a directory (or not there): a single source
    /// takes this name.
    Name(Vec<u8>),
    /// `dir/` that is not there: a directory (with `-r`) takes the name; a
    /// file cannot (scp's sink fails to open `dir/` as a file).
    NewDirectory(Vec<u8>),
}

/// A remote source of a download or `-3`.
struct RemoteSource {
    path: Vec<u8>,
    attrs: Attrs,
    /// The name it is received under.
    name: Vec<u8>,
}

/// A remote directory being filled by an upload.
struct RemoteDirectory {
    path: Vec<u8>,
    /// Set once it is filled: its mode (and times with `-p`).
    finish: Option<Attrs>,
}

pub struct Sftp<'e, R, W> {
    session: Session<R, W>,
    options: SftpOptions,
    events: &'e dyn Events,
    errors: u32,
    pacer: Option<Pacer>,
    /// Freed buffers for received data.
    buffers: Vec<Vec<u8>>,
    deferred: std::collections::HashMap<u32, Deferred>,
    /// Files whose error was reported already.
    failed_files: std::collections::HashSet<u64>,
    files: u64,
    /// The remote directories being walked, outermost first: each one's
    /// real path and the bytes its listing holds.
    walking: Vec<(Vec<u8>, usize)>,
    /// Requests sent ahead whose replies have not come, and the replies
    /// that came before they were asked for.
    /// (Each with the most data its reply may carry: more is refused as
    /// it comes, so what is held stays within what was asked.)
    ahead: std::collections::HashMap<u32, u32>,
    early: std::collections::HashMap<u32, Reply>,
    /// More sessions with the same server, for big uploads.
    stripes: Vec<Sftp<'e, R, W>>,
    /// How long the handshake took (its round trips).
    handshake: std::time::Duration,
}

impl<'e, R, W> Sftp<'e, R, W>
where
    R: AsyncRead + Unpin,
    W: DataWrite,
{
    /// Starts the session (the version handshake and the server's limits).
    pub async fn start(
        reader: R,
        writer: W,
        options: SftpOptions,
        events: &'e dyn Events,
    ) -> Result<Self, SessionError> {
        let started = std::time::Instant::now();
        let session = Session::start(reader, writer, options.buffer).await?;
        let handshake = started.elapsed();
        if events.verbose() {
            let line = format!(
                "SFTP session: {} bytes per read, {} per write, {} requests in flight\n",
                session.read_len, session.write_len, options.requests
            );
            events.debug(line.as_bytes());
        }
        Ok(Sftp {
            session,
            options,
            events,
            errors: 0,
            pacer: options.limit.map(Pacer::new),
            buffers: Vec::new(),
            deferred: std::collections::HashMap::new(),
            failed_files: std::collections::HashSet::new(),
            files: 0,
            walking: Vec::new(),
            ahead: std::collections::HashMap::new(),
            early: std::collections::HashMap::new(),
            stripes: Vec::new(),
            handshake,
        })
    }

    /// Ends the session (and its stripes), once every reply left
    /// unawaited has come.
    pub async fn close(mut self) -> Result<Summary, SessionError> {
        self.settle(0).await?;
        self.session.shutdown().await;
        let mut errors = self.errors;
        for stripe in std::mem::take(&mut self.stripes) {
            errors += Box::pin(stripe.close()).await?.errors;
        }
        Ok(Summary { errors })
    }

    /// How long the handshake took: its round trips, a measure of the
    /// link's latency.
    pub fn handshake_time(&self) -> std::time::Duration {
        self.handshake
    }

    /// Sessions with the same server over other channels: uploads of big
    /// files are striped over them.
    pub fn add_stripes(&mut self, stripes: Vec<Sftp<'e, R, W>>) {
        self.stripes.extend(stripes);
    }

    /// Sends `request` and waits for its reply (replies left unawaited
    /// that come first are checked on the way).
    async fn call(&mut self, request: &Request<'_>) -> Result<Reply, SessionError> {
        let id = self.session.send(request);
        let (answered, reply) = self.reply().await?;
        if answered != id {
            return Err(SessionError::Protocol(format!(
                "reply to request {answered} while {id} was waiting"
            )));
        }
        Ok(reply)
    }

    /// The next reply that something waits for.
    async fn reply(&mut self) -> Result<(u32, Reply), SessionError> {
        loop {
            let (id, reply) = self.session.receive().await?;
            if let Some(deferred) = self.deferred.remove(&id) {
                self.check_deferred(deferred, reply)?;
            } else if let Some(most) = self.ahead.remove(&id) {
                self.keep_early(id, most, reply)?;
            } else {
                return Ok((id, reply));
            }
        }
    }

    /// Sends `request` now and leaves its reply for [`Sftp::reply_to`]:
    /// requests for the next files go out while the current one moves.
    fn send_ahead(&mut self, request: &Request<'_>) -> u32 {
        let most = match request {
            Request::Read { len, .. } => *len,
            _ => 0,
        };
        let id = self.session.send(request);
        self.ahead.insert(id, most);
        id
    }

    /// Holds a reply to a request sent ahead that came before it was
    /// asked for.
    /// What is held stays small besides the data asked for: a handle is
    /// at most 256 bytes (as the protocol says), a status's text is cut to
    /// a line's worth, and no other reply answers a request sent ahead.
    fn keep_early(&mut self, id: u32, most: u32, reply: Reply) -> Result<(), SessionError> {
        let reply = match reply {
            Reply::Data(data) if data.len() > most as usize => {
                return Err(SessionError::Protocol(
                    "server sent more data than asked".into(),
                ));
            }
            Reply::Handle(handle) if handle.len() > MAX_HANDLE => {
                return Err(SessionError::Protocol(
                    "handle longer than 256 bytes".into(),
                ));
            }
            Reply::Status { code, mut message } => {
                message.truncate(EARLY_STATUS_TEXT);
                Reply::Status { code, message }
            }
            reply @ (Reply::Name(_) | Reply::ExtendedReply(_)) => return Err(unexpected(&reply)),
            reply => reply,
        };
        self.early.insert(id, reply);
        Ok(())
    }

    /// The reply to a request sent ahead.
    async fn reply_to(&mut self, id: u32) -> Result<Reply, SessionError> {
        loop {
            if let Some(reply) = self.early.remove(&id) {
                return Ok(reply);
            }
            if !self.ahead.contains_key(&id) {
                return Err(SessionError::Protocol(format!(
                    "no reply to request {id} is due"
                )));
            }
            let (answered, reply) = self.session.receive().await?;
            if let Some(deferred) = self.deferred.remove(&answered) {
                self.check_deferred(deferred, reply)?;
            } else if let Some(most) = self.ahead.remove(&answered) {
                self.keep_early(answered, most, reply)?;
            } else {
                return Err(SessionError::Protocol(format!(
                    "reply to request {answered}, which was not waiting"
                )));
            }
        }
    }

    /// Leaves the reply to `id` unawaited (see [`Deferred`]).
    async fn defer(
        &mut self,
        id: u32,
        file: u64,
        path: &[u8],
        what: &'static str,
    ) -> Result<(), SessionError> {
        let deferred = Deferred {
            file,
            path: path.to_vec(),
            what,
        };
        self.deferred.insert(id, deferred);
        self.settle(MAX_DEFERRED).await
    }

    /// Waits for replies left unawaited until at most `left` remain. Only
    /// called with nothing but requests sent ahead in flight (their
    /// replies are kept for [`Sftp::reply_to`]).
    async fn settle(&mut self, left: usize) -> Result<(), SessionError> {
        while self.deferred.len() > left {
            let (id, reply) = self.session.receive().await?;
            if let Some(most) = self.ahead.remove(&id) {
                self.keep_early(id, most, reply)?;
                continue;
            }
            let Some(deferred) = self.deferred.remove(&id) else {
                return Err(SessionError::Protocol(format!(
                    "reply to request {id}, which was not waiting"
                )));
            };
            self.check_deferred(deferred, reply)?;
        }
        Ok(())
    }

    fn check_deferred(&mut self, deferred: Deferred, reply: Reply) -> Result<(), SessionError> {
        match reply {
            Reply::Status {
                code: codec::FX_OK, ..
            } => Ok(()),
            Reply::Status { code, message } => {
                if self.failed_files.insert(deferred.file) {
                    let why = status_text(code, &message);
                    let why = match deferred.what {
                        "" => why,
                        what => format!("{what}: {why}"),
                    };
                    self.fail_remote(&deferred.path, &why);
                }
                Ok(())
            }
            other => Err(unexpected(&other)),
        }
    }

    fn next_file(&mut self) -> u64 {
        self.files += 1;
        self.files
    }

    fn fail(&mut self, message: &str) {
        self.errors += 1;
        self.events.error(message);
    }

    /// Reports `path: why`, and returns it.
    fn fail_remote(&mut self, path: &[u8], why: &str) -> String {
        let message = format!("{}: {why}", for_terminal(path));
        self.fail(&message);
        message
    }

    fn requests_for(&self, len: u32) -> usize {
        let by_memory = (MAX_IN_FLIGHT / u64::from(len.max(1))).max(1) as usize;
        self.options.requests.clamp(1, by_memory)
    }

    // ---- paths -------------------------------------------------------

    /// The remote paths `request` names, globs expanded over SFTP (a glob
    /// that matches nothing stands for itself, as the shell leaves it).
    /// `Err` is a message for a request only a shell could read.
    async fn resolve(
        &mut self,
        request: &[u8],
    ) -> Result<Result<Vec<Vec<u8>>, String>, SessionError> {
        let read = match crate::scp::names::read_for_sftp(request) {
            Ok(read) => read,
            Err(why) => return Ok(Err(format!("{}: {why}", for_terminal(request)))),
        };
        let mut paths = Vec::new();
        for shell_path in read {
            let base = match &shell_path.home {
                Some(user) if !user.is_empty() => match self.expand_home(user).await? {
                    Ok(home) => home,
                    Err(why) => return Ok(Err(why)),
                },
                // `~` is the login directory, where relative paths start.
                Some(_) => Vec::new(),
                None if shell_path.absolute => b"/".to_vec(),
                None => Vec::new(),
            };
            let found = self.expand(base, &shell_path.components).await?;
            paths.extend(found);
        }
        Ok(Ok(paths))
    }

    /// The paths a shell would make of `base` and `components`: globs
    /// matched against directory listings (sorted, hidden names only where
    /// the glob spells the dot); a path that matches nothing is the text
    /// as written, as the shell leaves such a word.
    async fn expand(
        &mut self,
        base: Vec<u8>,
        components: &[Component],
    ) -> Result<Vec<Vec<u8>>, SessionError> {
        let literal = components.iter().fold(base.clone(), |path, c| match c {
            Component::Literal(text) => join(&path, text),
            Component::Glob(glob) => join(&path, &glob.text),
        });
        if !components.iter().any(|c| matches!(c, Component::Glob(_))) {
            return Ok(vec![literal]);
        }
        let mut current = vec![base];
        for component in components {
            match component {
                Component::Literal(text) => {
                    for path in &mut current {
                        *path = join(path, text);
                    }
                }
                Component::Glob(glob) => {
                    let mut next = Vec::new();
                    for directory in &current {
                        let Ok(entries) = self.list(directory).await? else {
                            continue;
                        };
                        let mut names: Vec<Vec<u8>> = entries
                            .into_iter()
                            .map(|e| e.filename)
                            .filter(|n| paths::is_plain_name(n) && glob.matches(n))
                            .collect();
                        names.sort();
                        next.extend(names.iter().map(|n| join(directory, n)));
                        let held: usize = next.iter().map(Vec::len).sum();
                        if next.len() > MAX_ENTRIES || held > MAX_LISTING_BYTES {
                            return Err(SessionError::Protocol(
                                "glob matches too many names".into(),
                            ));
                        }
                    }
                    current = next;
                }
            }
        }
        // Only what exists, as glob(3) finds it.
        let mut found = Vec::new();
        for path in current {
            if let Reply::Attrs(_) = self.call(&Request::Lstat { path: &path }).await? {
                found.push(path);
            }
        }
        if found.is_empty() {
            found.push(literal);
        }
        Ok(found)
    }

    /// `~user`, through OpenSSH's `expand-path@openssh.com`.
    async fn expand_home(&mut self, user: &[u8]) -> Result<Result<Vec<u8>, String>, SessionError> {
        if !self.session.has_extension(b"expand-path@openssh.com") {
            return Ok(Err("server expand-path extension is required".into()));
        }
        let tilde = [b"~".as_slice(), user].concat();
        let request = Request::Extended {
            name: "expand-path@openssh.com",
            fields: &[&tilde],
        };
        match self.call(&request).await? {
            Reply::Name(mut names) if names.len() == 1 => Ok(Ok(names.remove(0).filename)),
            Reply::Status { code, message } => Ok(Err(format!(
                "{}: {}",
                for_terminal(&tilde),
                status_text(code, &message)
            ))),
            other => Err(unexpected(&other)),
        }
    }

    /// STAT (following symlinks): `Ok(Err(why))` when the server says no.
    async fn stat(&mut self, path: &[u8]) -> Result<Result<Attrs, String>, SessionError> {
        match self
            .call(&Request::Stat {
                path: nonempty(path),
            })
            .await?
        {
            Reply::Attrs(attrs) => Ok(Ok(attrs)),
            Reply::Status { code, message } => Ok(Err(status_text(code, &message))),
            other => Err(unexpected(&other)),
        }
    }

    async fn realpath(&mut self, path: &[u8]) -> Result<Result<Vec<u8>, String>, SessionError> {
        match self
            .call(&Request::Realpath {
                path: nonempty(path),
            })
            .await?
        {
            Reply::Name(mut names) if names.len() == 1 => Ok(Ok(names.remove(0).filename)),
            Reply::Status { code, message } => Ok(Err(status_text(code, &message))),
            other => Err(unexpected(&other)),
        }
    }

    /// A directory's entries (all of them: READDIR to the end).
    async fn list(
        &mut self,
        path: &[u8],
    ) -> Result<Result<Vec<codec::NameEntry>, String>, SessionError> {
        let opened = self
            .call(&Request::Opendir {
                path: nonempty(path),
            })
            .await?;
        let handle = match handle_of(opened)? {
            Ok(handle) => handle,
            Err(why) => return Ok(Err(why)),
        };
        let mut entries = Vec::new();
        let mut bytes = 0usize;
        let outcome = loop {
            match self.call(&Request::Readdir { handle: &handle }).await? {
                // An empty page is the end too (as OpenSSH's client reads it).
                Reply::Name(names) if names.is_empty() => break Ok(Ok(entries)),
                Reply::Name(names) => {
                    bytes += memory_of(&names);
                    entries.extend(names);
                    if entries.len() > MAX_ENTRIES || bytes > MAX_LISTING_BYTES {
                        break Err(SessionError::Protocol("directory listing too long".into()));
                    }
                }
                Reply::Status {
                    code: codec::FX_EOF,
                    ..
                } => break Ok(Ok(entries)),
                Reply::Status { code, message } => break Ok(Err(status_text(code, &message))),
                other => break Err(unexpected(&other)),
            }
        };
        self.close_handle(&handle).await?;
        outcome
    }

    async fn close_handle(&mut self, handle: &[u8]) -> Result<Option<String>, SessionError> {
        match self.call(&Request::Close { handle }).await? {
            Reply::Status {
                code: codec::FX_OK, ..
            } => Ok(None),
            Reply::Status { code, message } => Ok(Some(status_text(code, &message))),
            other => Err(unexpected(&other)),
        }
    }

    // ---- uploads -----------------------------------------------------

    /// Decides where uploads go (scp's sink: an existing directory, or a
    /// name; `must_be_directory` with several sources or `-d`). `None`
    /// after reporting why nothing can be uploaded.
    pub async fn upload_target(
        &mut self,
        request: &[u8],
        must_be_directory: bool,
    ) -> Result<Option<UploadTarget>, SessionError> {
        let paths = match self.resolve(request).await? {
            Ok(paths) => paths,
            Err(message) => {
                self.fail(&message);
                return Ok(None);
            }
        };
        let [path] = paths.as_slice() else {
            self.fail("ambiguous target");
            return Ok(None);
        };
        let path = path.clone();
        // `dir/` names a directory: never a file of that name.
        let names_directory = request.ends_with(b"/") && !path.is_empty();
        match self.stat(&path).await? {
            Ok(attrs) if attrs.is_dir() => Ok(Some(UploadTarget::Directory(path))),
            Ok(_) if names_directory => {
                self.fail_remote(&[path.as_slice(), b"/"].concat(), "Not a directory");
                Ok(None)
            }
            Err(_) if names_directory && !must_be_directory => {
                Ok(Some(UploadTarget::NewDirectory(path)))
            }
            Ok(_) if must_be_directory => {
                self.fail_remote(&path, "Not a directory");
                Ok(None)
            }
            Err(why) if must_be_directory => {
                self.fail_remote(&path, &why);
                Ok(None)
            }
            _ => Ok(Some(UploadTarget::Name(path))),
        }
    }

    /// Uploads one operand (a file, or with `-r` a tree).
    pub async fn upload(
        &mut self,
        local: &Path,
        target: &UploadTarget,
    ) -> Result<(), SessionError> {
        let mut walk = Walk::new(local, self.options.recursive);
        let mut open: Vec<RemoteDirectory> = Vec::new();
        // A step read while looking for more files, still to be taken.
        let mut held: Option<Step> = None;
        while let Some(step) = held.take().or_else(|| walk.next()) {
            match step {
                Step::File { path, file, meta } => {
                    // The files right after it in the walk go with it:
                    // their OPENs leave together.
                    let mut files = vec![(path, file, meta)];
                    while files.len() < FILES_AHEAD {
                        match walk.next() {
                            Some(Step::File { path, file, meta }) => files.push((path, file, meta)),
                            other => {
                                held = other;
                                break;
                            }
                        }
                    }
                    self.upload_files(files, target, &open).await?;
                }
                Step::Directory(directory) => {
                    let remote = remote_name(target, &open, &directory.name());
                    if let Ok(entered) = self.make_directory(&remote, &directory.meta).await? {
                        open.push(entered);
                        walk.enter(directory);
                    }
                }
                Step::Leave => {
                    if let Some(done) = open.pop()
                        && let Some(attrs) = done.finish
                    {
                        let request = Request::Setstat {
                            path: &done.path,
                            attrs: &attrs,
                        };
                        if let Some(why) = self.status_of(&request).await? {
                            self.fail_remote(&done.path, &format!("set attributes: {why}"));
                        }
                    }
                }
                Step::Problem(message) => self.fail(&message),
            }
        }
        Ok(())
    }

    /// The status a request gets: `None` for OK, else why.
    async fn status_of(&mut self, request: &Request<'_>) -> Result<Option<String>, SessionError> {
        match self.call(request).await? {
            Reply::Status {
                code: codec::FX_OK, ..
            } => Ok(None),
            Reply::Status { code, message } => Ok(Some(status_text(code, &message))),
            other => Err(unexpected(&other)),
        }
    }

    /// A remote directory to upload into: an existing one, or a new one
    /// (owner-writable while it fills, as scp's sink makes it).
    async fn make_directory(
        &mut self,
        remote: &[u8],
        meta: &Metadata,
    ) -> Result<Result<RemoteDirectory, String>, SessionError> {
        let times = (clamp_time(meta.atime()), clamp_time(meta.mtime()));
        self.make_directory_with(remote, meta.mode(), Some(times))
            .await
    }

    /// `times` (atime, mtime) go with `-p` where known.
    async fn make_directory_with(
        &mut self,
        remote: &[u8],
        mode: u32,
        times: Option<(u32, u32)>,
    ) -> Result<Result<RemoteDirectory, String>, SessionError> {
        let preserve = self.options.preserve;
        let finish_preserved = preserve.then(|| Attrs {
            permissions: Some(mode & DIRECTORY_MODE_BITS),
            times,
            ..Attrs::default()
        });
        match self.stat(remote).await? {
            Ok(attrs) if attrs.is_dir() => {
                return Ok(Ok(RemoteDirectory {
                    path: remote.to_vec(),
                    finish: finish_preserved,
                }));
            }
            Ok(_) => return Ok(Err(self.fail_remote(remote, "Not a directory"))),
            Err(_) => {}
        }
        let attrs = Attrs {
            permissions: Some((mode & 0o777) | 0o700),
            ..Attrs::default()
        };
        let request = Request::Mkdir {
            path: remote,
            attrs: &attrs,
        };
        if let Some(why) = self.status_of(&request).await? {
            return Ok(Err(self.fail_remote(remote, &why)));
        }
        // Without -p, a new directory keeps the owner bits it was made
        // with only where the original had them.
        let finish = finish_preserved.or_else(|| {
            (mode & 0o700 != 0o700).then(|| Attrs {
                permissions: Some(mode & 0o777),
                ..Attrs::default()
            })
        });
        Ok(Ok(RemoteDirectory {
            path: remote.to_vec(),
            finish,
        }))
    }

    /// Files of one directory, in walk order: every OPEN sent first, then
    /// each file's data as its handle comes.
    async fn upload_files(
        &mut self,
        files: Vec<(PathBuf, File, Metadata)>,
        target: &UploadTarget,
        open: &[RemoteDirectory],
    ) -> Result<(), SessionError> {
        let mut opened = Vec::with_capacity(files.len());
        for (path, file, meta) in files {
            if let (None, UploadTarget::NewDirectory(named)) = (open.last(), target) {
                let shown = [named.as_slice(), b"/"].concat();
                self.fail_remote(&shown, "Is a directory");
                continue;
            }
            let remote = remote_name(target, open, last_component(&path));
            let attrs = Attrs {
                permissions: Some(meta.mode() & 0o777),
                ..Attrs::default()
            };
            let request = self.send_ahead(&Request::Open {
                path: &remote,
                flags: codec::OPEN_WRITE | codec::OPEN_CREAT,
                attrs: &attrs,
            });
            opened.push((request, path, file, meta, remote));
        }
        for (request, path, file, meta, remote) in opened {
            let answer = self.reply_to(request).await?;
            let handle = match handle_of(answer)? {
                Ok(handle) => handle,
                Err(why) => {
                    self.fail_remote(&remote, &why);
                    continue;
                }
            };
            self.upload_file(&path, file, &meta, &remote, handle)
                .await?;
        }
        Ok(())
    }

    async fn upload_file(
        &mut self,
        local: &Path,
        file: File,
        meta: &Metadata,
        remote: &[u8],
        handle: Vec<u8>,
    ) -> Result<(), SessionError> {
        let size = meta.len();
        let id = FileId::next();
        self.events.file_started(id, last_component(local), size);
        let file = Arc::new(file);
        let written = if size >= STRIPE_MIN && !self.stripes.is_empty() && self.pacer.is_none() {
            self.write_striped(remote, &handle, file, size, id).await
        } else {
            self.write_data(&handle, file, (0, size), id).await
        };
        self.events.file_finished(id);
        let (sent, local_failure, remote_failure, unawaited) = written?;
        // The rest is not waited for: the next file starts meanwhile.
        let file_number = self.next_file();
        if let Some(why) = local_failure {
            self.failed_files.insert(file_number);
            self.fail(&format!(
                "{}: {why}",
                crate::escape::path_for_terminal(local)
            ));
        } else if let Some(why) = remote_failure {
            self.failed_files.insert(file_number);
            self.fail_remote(remote, &why);
        }
        for request in unawaited {
            self.defer(request, file_number, remote, "").await?;
        }
        if !self.failed_files.contains(&file_number) || sent < size {
            // Written in place: the size cuts what was longer before (also
            // after a local read error, so that no old data follows).
            let mut attrs = Attrs {
                size: Some(sent),
                ..Attrs::default()
            };
            if self.options.preserve {
                attrs.permissions = Some(meta.mode() & FILE_MODE_BITS);
                attrs.times = Some((clamp_time(meta.atime()), clamp_time(meta.mtime())));
            }
            let request = self.session.send(&Request::Fsetstat {
                handle: &handle,
                attrs: &attrs,
            });
            self.defer(request, file_number, remote, "set attributes")
                .await?;
        }
        let request = self.session.send(&Request::Close { handle: &handle });
        self.defer(request, file_number, remote, "close").await
    }

    /// Sends bytes `start..size` of `file` as WRITEs, several in flight.
    /// Returns where it stopped, why the local file could not be read, why
    /// the server refused a write (the first of each), and the WRITEs
    /// still unanswered.
    async fn write_data(
        &mut self,
        handle: &[u8],
        file: Arc<File>,
        (start, size): (u64, u64),
        id: FileId,
    ) -> Result<Written, SessionError> {
        let chunk = self.session.write_len.max(1);
        let most = self.requests_for(chunk);
        let mode = blocking::Mode::for_file(&file, size - start);
        let mut in_flight: std::collections::VecDeque<u32> = std::collections::VecDeque::new();
        let mut offset = start;
        let (mut local_failure, mut remote_failure) = (None, None);
        loop {
            while offset < size
                && in_flight.len() < most
                && local_failure.is_none()
                && remote_failure.is_none()
            {
                let len = (size - offset).min(u64::from(chunk)) as u32;
                let (request, mut packet) = self.session.write_packet(handle, offset, len);
                let data = packet.split_off(packet.len());
                let mut data = data;
                data.resize(len as usize, 0);
                let (mut data, read) =
                    blocking::finish(blocking::read_at(mode, file.clone(), data, offset), || {
                        bytes::BytesMut::zeroed(len as usize)
                    })
                    .await;
                match read {
                    Ok(n) if n == len as usize => {}
                    Ok(n) => {
                        data[n..].fill(0);
                        local_failure = Some("file shrank while being read".to_owned());
                    }
                    Err(e) => {
                        data.fill(0);
                        local_failure = Some(crate::escape::io_reason(&e));
                    }
                }
                packet.unsplit(data);
                self.session.send_packet(packet.freeze()).await?;
                in_flight.push_back(request);
                offset += u64::from(len);
                self.events.file_progress(id, u64::from(len));
                if let Some(pacer) = self.pacer.as_mut() {
                    pacer.moved(u64::from(len)).await;
                }
            }
            let sent_all = offset >= size || local_failure.is_some() || remote_failure.is_some();
            if sent_all || in_flight.is_empty() {
                break;
            }
            if let Some(why) = self.await_write(&mut in_flight).await? {
                remote_failure.get_or_insert(why);
            }
        }
        let unanswered = in_flight.into_iter().collect();
        Ok((offset, local_failure, remote_failure, unanswered))
    }

    /// A big file's data over this session and its stripes at once, each
    /// a range of its own (sshd grants each channel a window of 2 MiB:
    /// one session moves at most that per round trip). The file was made
    /// here; the stripes only open it, and its size is set once, here.
    async fn write_striped(
        &mut self,
        remote: &[u8],
        handle: &[u8],
        file: Arc<File>,
        size: u64,
        id: FileId,
    ) -> Result<Written, SessionError> {
        let mut stripes = std::mem::take(&mut self.stripes);
        let parts = stripes.len() as u64 + 1;
        let chunk = u64::from(self.session.write_len.max(1));
        let part = size.div_ceil(parts).div_ceil(chunk) * chunk;
        let range = |i: u64| ((i * part).min(size), ((i + 1) * part).min(size));
        // Every session reads its replies to the end, this one too: a
        // channel left unread fills russh's queue, which stops the whole
        // connection (the others' window updates with it).
        let ours = async {
            let (stopped, local, mut remote, unanswered) =
                self.write_data(handle, file.clone(), range(0), id).await?;
            if let Some(why) = self.await_writes(unanswered).await? {
                remote.get_or_insert(why);
            }
            Ok::<Written, SessionError>((stopped, local, remote, Vec::new()))
        };
        let theirs = futures_util::future::join_all(
            stripes
                .iter_mut()
                .zip(1..)
                .map(|(stripe, i)| stripe.write_stripe(remote, file.clone(), range(i), id)),
        );
        let (ours, theirs) = futures_util::future::join(ours, theirs).await;
        self.stripes = stripes;
        let (mut stopped, mut local_failure, mut remote_failure, unanswered) = ours?;
        let mut short = stopped < range(0).1;
        if !short {
            stopped = size;
        }
        for (theirs, i) in theirs.into_iter().zip(1..) {
            let (at, local, remote) = theirs?;
            if local.is_some() || remote.is_some() || at < range(i).1 {
                // The size is cut at the first gap.
                stopped = if short { stopped.min(at) } else { at };
                short = true;
            }
            local_failure = local_failure.or(local);
            remote_failure = remote_failure.or(remote);
        }
        Ok((stopped, local_failure, remote_failure, unanswered))
    }

    /// One stripe of a big file, on a session of its own: opened (never
    /// created or cut), written, every reply awaited, closed.
    async fn write_stripe(
        &mut self,
        remote: &[u8],
        file: Arc<File>,
        range: (u64, u64),
        id: FileId,
    ) -> Result<(u64, Option<String>, Option<String>), SessionError> {
        let open = Request::Open {
            path: remote,
            flags: codec::OPEN_WRITE,
            attrs: &Attrs::default(),
        };
        let opened = self.call(&open).await?;
        let handle = match handle_of(opened)? {
            Ok(handle) => handle,
            Err(why) => return Ok((range.0, None, Some(why))),
        };
        let (stopped, local_failure, mut remote_failure, unanswered) =
            self.write_data(&handle, file, range, id).await?;
        if let Some(why) = self.await_writes(unanswered).await? {
            remote_failure.get_or_insert(why);
        }
        if let Some(why) = self.close_handle(&handle).await? {
            remote_failure.get_or_insert(format!("close: {why}"));
        }
        Ok((stopped, local_failure, remote_failure))
    }

    /// Waits for the replies to every WRITE in `unanswered`: why the server
    /// refused one, if it did (the first).
    async fn await_writes(&mut self, unanswered: Vec<u32>) -> Result<Option<String>, SessionError> {
        let mut in_flight = unanswered.into();
        let mut refused = None;
        while !std::collections::VecDeque::is_empty(&in_flight) {
            if let Some(why) = self.await_write(&mut in_flight).await? {
                refused.get_or_insert(why);
            }
        }
        Ok(refused)
    }

    /// Waits for the reply to one of the WRITEs `in_flight` (replies left
    /// unawaited are checked on the way): why the server refused it, if it
    /// did.
    async fn await_write(
        &mut self,
        in_flight: &mut std::collections::VecDeque<u32>,
    ) -> Result<Option<String>, SessionError> {
        let (answered, reply) = self.reply().await?;
        let Some(at) = in_flight.iter().position(|&r| r == answered) else {
            return Err(SessionError::Protocol(format!(
                "reply to request {answered}, which was not waiting"
            )));
        };
        in_flight.remove(at);
        match reply {
            Reply::Status {
                code: codec::FX_OK, ..
            } => Ok(None),
            Reply::Status { code, message } => Ok(Some(status_text(code, &message))),
            other => Err(unexpected(&other)),
        }
    }

    // ---- -3: from this session's server to another's ------------------

    /// `-3`: copies what `request` names on this session's server to
    /// `destination` (another SFTP server, or a remote `scp -t`) through
    /// this host.
    pub async fn relay_into<D: Destination>(
        &mut self,
        destination: &mut D,
        request: &[u8],
    ) -> Result<(), SessionError> {
        for source in self.sources(request).await? {
            if source.attrs.is_dir() {
                self.relay_tree(destination, &source.path, &source.attrs, &source.name)
                    .await?;
            } else {
                self.relay_file(destination, &source.path, &source.attrs, &source.name)
                    .await?;
            }
        }
        Ok(())
    }

    async fn relay_tree<D: Destination>(
        &mut self,
        destination: &mut D,
        from: &[u8],
        attrs: &Attrs,
        name: &[u8],
    ) -> Result<(), SessionError> {
        let Some(entries) = self.enter_remote(from).await? else {
            return Ok(());
        };
        let mode = attrs.permissions.unwrap_or(0o755) & DIRECTORY_MODE_BITS;
        let times = self.times_of(attrs);
        if destination
            .enter_directory(name, mode, times)
            .await?
            .is_some()
        {
            self.leave_remote();
            return Ok(());
        }
        for entry in entries {
            let Some((name, child, attrs)) = self.walk_entry(from, entry).await? else {
                continue;
            };
            if attrs.is_dir() {
                Box::pin(self.relay_tree(destination, &child, &attrs, &name)).await?;
            } else {
                self.relay_file(destination, &child, &attrs, &name).await?;
            }
        }
        self.leave_remote();
        destination.leave_directory().await?;
        Ok(())
    }

    /// One file: READs here one at a time, each passed on as it comes.
    async fn relay_file<D: Destination>(
        &mut self,
        destination: &mut D,
        from: &[u8],
        attrs: &Attrs,
        name: &[u8],
    ) -> Result<(), SessionError> {
        let open = Request::Open {
            path: from,
            flags: codec::OPEN_READ,
            attrs: &Attrs::default(),
        };
        let opened = self.call(&open).await?;
        let source = match handle_of(opened)? {
            Ok(handle) => handle,
            Err(why) => {
                self.fail_remote(from, &why);
                return Ok(());
            }
        };
        let mut size = attrs.size;
        if size.is_none() && destination.needs_size() {
            // A server may leave the size out of a listing: ask the file.
            size = match self.call(&Request::Fstat { handle: &source }).await? {
                Reply::Attrs(attrs) => attrs.size,
                Reply::Status { .. } => None,
                other => return Err(unexpected(&other)),
            };
            if size.is_none() {
                self.fail_remote(from, "the server does not tell its size");
                self.close_handle(&source).await?;
                return Ok(());
            }
        }
        let size = size.unwrap_or(0);
        let mode = attrs.permissions.unwrap_or(0o644) & FILE_MODE_BITS;
        let times = self.times_of(attrs);
        if destination
            .begin_file(name, mode, size, times)
            .await?
            .is_some()
        {
            self.close_handle(&source).await?;
            return Ok(());
        }
        let id = FileId::next();
        self.events.file_started(id, name, size);
        let moved = self.pass_data(destination, &source, id).await;
        self.events.file_finished(id);
        let failure = moved?;
        if let Some(why) = &failure {
            self.fail_remote(from, why);
        }
        destination.end_file(failure.as_deref()).await?;
        if let Some(why) = self.close_handle(&source).await? {
            self.fail_remote(from, &format!("close: {why}"));
        }
        Ok(())
    }

    /// The data of one relayed file, until its end or until the
    /// destination takes no more: why reading stopped short, if it did.
    async fn pass_data<D: Destination>(
        &mut self,
        destination: &mut D,
        source: &[u8],
        id: FileId,
    ) -> Result<Option<String>, SessionError> {
        let chunk = self.session.read_len.max(1);
        let mut offset = 0u64;
        loop {
            let len = match destination.room() {
                Some(0) => return Ok(None),
                Some(room) => room.min(u64::from(chunk)) as u32,
                None => chunk,
            };
            let read = Request::Read {
                handle: source,
                offset,
                len,
            };
            let data = match self.call(&read).await? {
                Reply::Data(data) if data.len() <= len as usize && !data.is_empty() => data,
                Reply::Data(data) if data.is_empty() => {
                    return Err(SessionError::Protocol("server sent empty data".into()));
                }
                Reply::Data(_) => {
                    return Err(SessionError::Protocol(
                        "server sent more data than asked".into(),
                    ));
                }
                Reply::Status {
                    code: codec::FX_EOF,
                    ..
                } => {
                    // A destination told the size first needs all of it.
                    let short = destination.room().is_some_and(|room| room > 0);
                    return Ok(short.then(|| "file shrank while being read".to_owned()));
                }
                Reply::Status { code, message } => return Ok(Some(status_text(code, &message))),
                other => return Err(unexpected(&other)),
            };
            destination.file_data(&data).await?;
            offset += data.len() as u64;
            self.events.file_progress(id, data.len() as u64);
            if let Some(pacer) = self.pacer.as_mut() {
                pacer.moved(data.len() as u64).await;
            }
        }
    }

    // ---- downloads ---------------------------------------------------

    /// Downloads what `request` names into `target` (a directory, or the
    /// name a single file takes).
    pub async fn download(&mut self, request: &[u8], target: &Path) -> Result<(), SessionError> {
        let target_is_directory = std::fs::metadata(target).is_ok_and(|m| m.is_dir());
        for source in self.sources(request).await? {
            let local = if target_is_directory {
                target.join(std::ffi::OsStr::from_bytes(&source.name))
            } else {
                target.to_owned()
            };
            if source.attrs.is_dir() {
                self.download_tree(&source.path, &source.attrs, local)
                    .await?;
            } else {
                self.download_file(&source.path, &source.attrs, &local)
                    .await?;
            }
        }
        Ok(())
    }

    /// The sources `request` names for a download or `-3`: regular files,
    /// and directories with `-r`, each with the name it is received under.
    /// What cannot be copied is reported and left out.
    async fn sources(&mut self, request: &[u8]) -> Result<Vec<RemoteSource>, SessionError> {
        let paths = match self.resolve(request).await? {
            Ok(paths) => paths,
            Err(message) => {
                self.fail(&message);
                return Ok(Vec::new());
            }
        };
        let mut sources = Vec::new();
        for path in paths {
            let attrs = match self.stat(&path).await? {
                Ok(attrs) => attrs,
                Err(why) => {
                    self.fail_remote(&path, &why);
                    continue;
                }
            };
            if !(attrs.is_regular() || attrs.is_dir() && self.options.recursive) {
                self.fail_remote(&path, "not a regular file");
                continue;
            }
            if let Some(name) = self.name_of(&path).await? {
                sources.push(RemoteSource { path, attrs, name });
            }
        }
        Ok(sources)
    }

    /// Starts walking the remote directory `path`: its real path checked
    /// against the directories being walked (loops, depth), its listing
    /// counted against one budget for the whole walk. `None` after saying
    /// why it cannot be walked. [`Sftp::leave_remote`] ends it.
    async fn enter_remote(
        &mut self,
        path: &[u8],
    ) -> Result<Option<Vec<codec::NameEntry>>, SessionError> {
        let real = match self.realpath(path).await? {
            Ok(real) => real,
            Err(why) => {
                self.fail_remote(path, &why);
                return Ok(None);
            }
        };
        if self.walking.iter().any(|(walked, _)| *walked == real) {
            self.fail_remote(path, "directory loop (symbolic link to a parent)");
            return Ok(None);
        }
        if self.walking.len() >= MAX_DEPTH {
            self.fail_remote(path, "maximum directory depth exceeded");
            return Ok(None);
        }
        let entries = match self.list(path).await? {
            Ok(entries) => entries,
            Err(why) => {
                self.fail_remote(path, &why);
                return Ok(None);
            }
        };
        let kept = real.len() + memory_of(&entries);
        let held: usize = self.walking.iter().map(|(_, kept)| kept).sum();
        if held + kept > MAX_LISTING_BYTES {
            return Err(SessionError::Protocol(
                "remote tree too large to walk".into(),
            ));
        }
        self.walking.push((real, kept));
        Ok(Some(entries))
    }

    /// The end of the directory entered last.
    fn leave_remote(&mut self) {
        self.walking.pop();
    }

    /// An entry of a remote directory being walked, checked: its name (a
    /// name that is not one is reported; `.` and `..` are skipped), the
    /// path to it, and its attributes with symlinks followed. `None` for
    /// what is not copied.
    async fn walk_entry(
        &mut self,
        directory: &[u8],
        entry: codec::NameEntry,
    ) -> Result<Option<(Vec<u8>, Vec<u8>, Attrs)>, SessionError> {
        let name = entry.filename;
        if name == b"." || name == b".." {
            return Ok(None);
        }
        if !paths::is_plain_name(&name) {
            let message = format!(
                "{}: server sent a name that is not one: \"{}\"",
                for_terminal(directory),
                for_terminal(&name)
            );
            self.fail(&message);
            return Ok(None);
        }
        let child = join(directory, &name);
        let mut attrs = entry.attrs;
        // READDIR's attributes are the link's own: follow links.
        let is_link = attrs
            .permissions
            .is_some_and(|p| p & libc::S_IFMT == libc::S_IFLNK);
        if is_link || attrs.permissions.is_none() {
            attrs = match self.stat(&child).await? {
                Ok(attrs) => attrs,
                Err(why) => {
                    self.fail_remote(&child, &why);
                    return Ok(None);
                }
            };
        }
        if !attrs.is_dir() && !attrs.is_regular() {
            self.fail_remote(&child, "not a regular file");
            return Ok(None);
        }
        Ok(Some((name, child, attrs)))
    }

    /// The name a top-level source is received under: its last component,
    /// or for `.`, `..`, `~` and the like the real name of the directory.
    async fn name_of(&mut self, path: &[u8]) -> Result<Option<Vec<u8>>, SessionError> {
        let last = paths::last_component(path);
        if !last.is_empty() && last != b"." && last != b".." {
            return Ok(Some(last.to_vec()));
        }
        match self.realpath(path).await? {
            Ok(real) => {
                let name = paths::last_component(&real);
                if name.is_empty() || name == b"." || name == b".." {
                    // The root: there is no name to receive it under.
                    self.fail_remote(path, "cannot be received under a name");
                    return Ok(None);
                }
                Ok(Some(name.to_vec()))
            }
            Err(why) => {
                self.fail_remote(path, &why);
                Ok(None)
            }
        }
    }

    async fn download_tree(
        &mut self,
        remote: &[u8],
        attrs: &Attrs,
        local: PathBuf,
    ) -> Result<(), SessionError> {
        let Some(entries) = self.enter_remote(remote).await? else {
            return Ok(());
        };
        let mode = attrs.permissions.unwrap_or(0o755) & DIRECTORY_MODE_BITS;
        let times = self.times_of(attrs);
        let directory = match ReceivedDirectory::enter(
            local,
            mode,
            times,
            self.options.preserve,
            self.options.umask,
        ) {
            Ok(directory) => directory,
            Err(message) => {
                self.fail(&message);
                self.leave_remote();
                return Ok(());
            }
        };
        // Files that come one after another go together: their OPENs (and
        // a small file's READs) leave at once.
        let mut files = Vec::new();
        for entry in entries {
            let Some((name, child, attrs)) = self.walk_entry(remote, entry).await? else {
                continue;
            };
            let local_child = directory.path.join(std::ffi::OsStr::from_bytes(&name));
            if attrs.is_dir() {
                self.download_files(std::mem::take(&mut files)).await?;
                Box::pin(self.download_tree(&child, &attrs, local_child)).await?;
            } else {
                files.push((child, attrs, local_child));
                if files.len() >= self.session.files_ahead {
                    self.download_files(std::mem::take(&mut files)).await?;
                }
            }
        }
        self.download_files(files).await?;
        self.leave_remote();
        if let Err(message) = directory.finish() {
            self.fail(&message);
        }
        Ok(())
    }

    fn times_of(&self, attrs: &Attrs) -> Option<Times> {
        let (atime, mtime) = attrs.times?;
        self.options.preserve.then_some(Times {
            mtime: u64::from(mtime),
            mtime_usec: 0,
            atime: u64::from(atime),
            atime_usec: 0,
        })
    }

    async fn download_file(
        &mut self,
        remote: &[u8],
        attrs: &Attrs,
        local: &Path,
    ) -> Result<(), SessionError> {
        self.download_files(vec![(remote.to_vec(), attrs.clone(), local.to_owned())])
            .await
    }

    /// Files of one directory, in order: every OPEN sent first; as the
    /// handles come, the READs of the small ones; then each is received.
    async fn download_files(
        &mut self,
        files: Vec<(Vec<u8>, Attrs, PathBuf)>,
    ) -> Result<(), SessionError> {
        let mut opening = Vec::with_capacity(files.len());
        for (remote, attrs, local) in files {
            let request = self.send_ahead(&Request::Open {
                path: &remote,
                flags: codec::OPEN_READ,
                attrs: &Attrs::default(),
            });
            opening.push((request, remote, attrs, local));
        }
        let mut opened = Vec::with_capacity(opening.len());
        // What the READs sent ahead may bring, held until read: bounded.
        let mut budget = MAX_IN_FLIGHT;
        for (request, remote, attrs, local) in opening {
            let answer = self.reply_to(request).await?;
            let handle = match handle_of(answer)? {
                Ok(handle) => handle,
                Err(why) => {
                    self.fail_remote(&remote, &why);
                    continue;
                }
            };
            let reads = self.read_ahead(&handle, attrs.size, &mut budget);
            opened.push((remote, attrs, local, handle, reads));
        }
        for (remote, attrs, local, handle, reads) in opened {
            self.receive_file(&remote, &attrs, &local, handle, reads)
                .await?;
        }
        Ok(())
    }

    /// A small file's READs, sent ahead while `budget` (the bytes they may
    /// bring) lasts: its data, and a short READ that finds its end (or
    /// that it grew: [`Sftp::read_data`] reads on from there).
    fn read_ahead(
        &mut self,
        handle: &[u8],
        size: Option<u64>,
        budget: &mut u64,
    ) -> Vec<(u32, u64, u32)> {
        const END_FINDER: u32 = 4096;
        let chunk = self.session.read_len.clamp(1, crate::local::CHUNK as u32);
        let Some(size) = size.filter(|&size| size <= u64::from(chunk)) else {
            return Vec::new();
        };
        let end_finder = END_FINDER.min(chunk);
        let Some(left) = budget.checked_sub(size + u64::from(end_finder)) else {
            return Vec::new();
        };
        *budget = left;
        let mut reads = Vec::with_capacity(2);
        if size > 0 {
            let len = size as u32;
            let id = self.send_ahead(&Request::Read {
                handle,
                offset: 0,
                len,
            });
            reads.push((id, 0, len));
        }
        let id = self.send_ahead(&Request::Read {
            handle,
            offset: size,
            len: end_finder,
        });
        reads.push((id, size, end_finder));
        reads
    }

    async fn receive_file(
        &mut self,
        remote: &[u8],
        attrs: &Attrs,
        local: &Path,
        handle: Vec<u8>,
        reads: Vec<(u32, u64, u32)>,
    ) -> Result<(), SessionError> {
        let size = attrs.size.unwrap_or(0);
        let mode = attrs.permissions.unwrap_or(0o644);
        let mut file = match Receiving::open(local, mode, size) {
            Ok(file) => file,
            Err(message) => {
                self.fail(&message);
                // What was asked for comes all the same.
                for (request, _, _) in reads {
                    self.reply_to(request).await?;
                }
                let file_number = self.next_file();
                self.failed_files.insert(file_number);
                let request = self.session.send(&Request::Close { handle: &handle });
                return self.defer(request, file_number, remote, "close").await;
            }
        };
        let id = FileId::next();
        self.events
            .file_started(id, paths::last_component(remote), size);
        let received = self.read_data(&handle, &mut file, size, id, reads).await;
        self.events.file_finished(id);
        let (received, remote_failure) = received?;
        let (freed, written) = file.finish_writes().await;
        self.buffers.extend(freed);
        let mut problem = written.err();
        if problem.is_none()
            && remote_failure.is_none()
            && let Err(message) = file.set_size(received)
        {
            problem = Some(message);
        }
        if self.options.preserve
            && let Err(message) = file.set_mode(mode & FILE_MODE_BITS)
        {
            problem.get_or_insert(message);
        }
        if let Some(times) = self.times_of(attrs)
            && !file.write_failed()
            && let Err(message) = file.set_times(times)
        {
            problem.get_or_insert(message);
        }
        let file_number = self.next_file();
        if let Some(why) = remote_failure {
            self.failed_files.insert(file_number);
            self.fail_remote(remote, &why);
        } else if let Some(message) = problem {
            self.failed_files.insert(file_number);
            self.fail(&message);
        }
        let request = self.session.send(&Request::Close { handle: &handle });
        self.defer(request, file_number, remote, "close").await
    }

    /// Reads the file to its end with several READs in flight, and writes
    /// what arrives in order. Returns the bytes received and why the
    /// server stopped short, if it did.
    async fn read_data(
        &mut self,
        handle: &[u8],
        file: &mut Receiving,
        size: u64,
        id: FileId,
        sent_ahead: Vec<(u32, u64, u32)>,
    ) -> Result<(u64, Option<String>), SessionError> {
        let chunk = self.session.read_len.clamp(1, crate::local::CHUNK as u32);
        let most = self.requests_for(chunk);
        // Request id -> (offset, length asked).
        let mut asked: std::collections::HashMap<u32, (u64, u32)> =
            std::collections::HashMap::new();
        // READs sent ahead are this loop's now; their replies that came
        // already are taken first.
        let mut arrived = std::collections::VecDeque::new();
        let mut planned = 0u64;
        for (request, offset, len) in sent_ahead {
            self.ahead.remove(&request);
            asked.insert(request, (offset, len));
            planned = planned.max(offset + u64::from(len));
            if let Some(reply) = self.early.remove(&request) {
                arrived.push_back((request, reply));
            }
        }
        // Data that came before the data ahead of it.
        let mut early: std::collections::BTreeMap<u64, Bytes> = std::collections::BTreeMap::new();
        let (mut next, mut written) = (planned, 0u64);
        let mut end: Option<u64> = None;
        let mut failure = None;
        // Reads cover the size the file had, then one more finds its end
        // (or that it grew, which moves the horizon on).
        let mut horizon = size;
        // The rest of short reads, still to ask for.
        let mut rests: std::collections::VecDeque<(u64, u32)> = std::collections::VecDeque::new();
        loop {
            // Data held out of order is bounded: new reads go only while
            // little is held; the read that fills the front always goes.
            if failure.is_none()
                && let Some(at) = rests.iter().position(|&(offset, _)| offset == written)
                && let Some((offset, len)) = rests.remove(at)
            {
                let sent = self.session.send(&Request::Read {
                    handle,
                    offset,
                    len,
                });
                asked.insert(sent, (offset, len));
            }
            while failure.is_none() && asked.len() < most && early.len() < most {
                let (offset, len) = if let Some(rest) = rests.pop_front() {
                    rest
                } else if end.is_none() && next <= horizon {
                    let len = if next < horizon {
                        (horizon - next).min(u64::from(chunk)) as u32
                    } else {
                        chunk
                    };
                    next += u64::from(len);
                    (next - u64::from(len), len)
                } else {
                    break;
                };
                let sent = self.session.send(&Request::Read {
                    handle,
                    offset,
                    len,
                });
                asked.insert(sent, (offset, len));
            }
            if asked.is_empty() {
                break;
            }
            let (answered, reply) = match arrived.pop_front() {
                Some(early) => early,
                None => self.reply().await?,
            };
            let Some((offset, len)) = asked.remove(&answered) else {
                return Err(SessionError::Protocol(format!(
                    "reply to request {answered}, which was not waiting"
                )));
            };
            match reply {
                Reply::Data(data) => {
                    if data.len() > len as usize {
                        return Err(SessionError::Protocol(
                            "server sent more data than asked".into(),
                        ));
                    }
                    if data.is_empty() {
                        return Err(SessionError::Protocol("server sent empty data".into()));
                    }
                    if end.is_some_and(|end| offset >= end) {
                        return Err(SessionError::Protocol(
                            "server sent data past the end of the file".into(),
                        ));
                    }
                    let got = data.len() as u32;
                    horizon = horizon.max(offset + u64::from(got));
                    if got < len {
                        // A short read: the rest of that range is asked
                        // for again.
                        rests.push_back((offset + u64::from(got), len - got));
                    }
                    early.insert(offset, data);
                    while let Some(data) = early.remove(&written) {
                        let len = data.len();
                        let mut buf = self.buffers.pop().unwrap_or_else(Receiving::fresh_buffer);
                        buf[..len].copy_from_slice(&data);
                        let freed = file.write(buf, len).await;
                        self.buffers.extend(freed);
                        written += len as u64;
                        self.events.file_progress(id, len as u64);
                        if let Some(pacer) = self.pacer.as_mut() {
                            pacer.moved(len as u64).await;
                        }
                    }
                }
                Reply::Status {
                    code: codec::FX_EOF,
                    ..
                } => {
                    end = Some(end.map_or(offset, |end: u64| end.min(offset)));
                }
                Reply::Status { code, message } => {
                    failure.get_or_insert_with(|| status_text(code, &message));
                }
                other => return Err(unexpected(&other)),
            }
        }
        if failure.is_none() && !early.is_empty() {
            return Err(SessionError::Protocol(
                "server left a gap in the file's data".into(),
            ));
        }
        Ok((written, failure))
    }
}

/// What a listing takes in memory: each entry itself and its name (the
/// budgets count this, not only the names' bytes).
fn memory_of(entries: &[codec::NameEntry]) -> usize {
    entries
        .iter()
        .map(|e| std::mem::size_of::<codec::NameEntry>() + e.filename.capacity())
        .sum()
}

/// A reply that should carry a handle: the handle, or why the server
/// refused.
fn handle_of(reply: Reply) -> Result<Result<Vec<u8>, String>, SessionError> {
    match reply {
        Reply::Handle(handle) => Ok(Ok(handle)),
        Reply::Status { code, message } => Ok(Err(status_text(code, &message))),
        other => Err(unexpected(&other)),
    }
}

/// SFTP has no empty path: the login directory is `.`.
fn nonempty(path: &[u8]) -> &[u8] {
    if path.is_empty() { b"." } else { path }
}

/// Where an uploaded entry goes: inside the directory being filled, inside
/// the target directory, or the target's own name.
fn remote_name(target: &UploadTarget, open: &[RemoteDirectory], name: &[u8]) -> Vec<u8> {
    match (open.last(), target) {
        (Some(directory), _) => join(&directory.path, name),
        (None, UploadTarget::Directory(directory)) => join(directory, name),
        (None, UploadTarget::Name(path) | UploadTarget::NewDirectory(path)) => path.clone(),
    }
}

/// A time for SFTP's 32-bit fields (out of range: the nearest end).
fn clamp_time(seconds: i64) -> u32 {
    u32::try_from(seconds.max(0)).unwrap_or(u32::MAX)
}
