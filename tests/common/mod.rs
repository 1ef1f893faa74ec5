//! Shared test fixtures: a throwaway OpenSSH sshd on 127.0.0.1, the rscp
//! binary, and file-tree helpers.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const SSHD: &str = "/usr/sbin/sshd";

/// Shared with scripts/demo, so the two cannot drift apart.
const SSHD_CONFIG: &str = include_str!("../fixture/sshd_config.in");
const SSH_CONFIG: &str = include_str!("../fixture/ssh_config.in");

/// The rscp binary under test.
pub fn rscp() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rscp"))
}

pub fn rscp_path() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rscp"))
}

/// In CI a missing sshd fails the test; elsewhere the test is skipped with
/// a note, so that `cargo test` still works on a laptop without it.
fn sshd_available() -> bool {
    if Path::new(SSHD).exists() && which("ssh-keygen") && which("ssh") && which("scp") {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but OpenSSH (sshd, ssh, ssh-keygen, scp) is not installed");
    }
    skip("OpenSSH server or client not installed");
    false
}

/// Notes a case skipped for lack of a peer: on stderr, and in a list that
/// scripts/test sums up at the end (cargo shows no output of passing tests).
pub fn skip(reason: &str) {
    eprintln!("skipping: {reason}");
    let list = Path::new(env!("CARGO_TARGET_TMPDIR")).join("rscp-skipped");
    if let Ok(mut file) = fs::OpenOptions::new().create(true).append(true).open(list) {
        let _ = writeln!(file, "{reason}");
    }
}

pub fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// A running sshd with its own keys, and a client config that reaches it.
pub struct Sshd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

impl Sshd {
    /// Starts a fixture sshd, or returns `None` (outside CI) when OpenSSH
    /// is not installed.
    pub fn start() -> Option<Sshd> {
        Sshd::start_with("")
    }

    /// Starts one with extra sshd_config lines (`@PORT@` and `@DIR@` are
    /// filled in); they come first, so they win.
    pub fn start_with(extra: &str) -> Option<Sshd> {
        Sshd::start_prepared(extra, |_| {})
    }

    /// Like `start_with`, with `prepare(dir)` run once the keys exist and
    /// before sshd starts (to sign a host certificate, say).
    pub fn start_prepared(extra: &str, prepare: impl FnOnce(&Path)) -> Option<Sshd> {
        if !sshd_available() {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("rscp-sshd")
            .tempdir()
            .expect("temp dir");
        let d = dir.path();
        keygen(&d.join("host_key"));
        keygen(&d.join("client_key"));
        fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).expect("authorized_keys");
        prepare(d);
        if nix_is_root() {
            // sshd's privilege separation directory, missing on fresh machines.
            let _ = fs::create_dir_all("/run/sshd");
        }
        for _attempt in 0..5 {
            let port = free_port();
            let config = d.join("sshd_config");
            let filled = |template: &str| {
                template
                    .replace("@PORT@", &port.to_string())
                    .replace("@DIR@", &d.display().to_string())
            };
            // Extra lines first: sshd, like ssh, keeps the first value it reads.
            fs::write(&config, filled(extra) + "\n" + &filled(SSHD_CONFIG)).expect("sshd_config");
            let log = fs::File::create(d.join("sshd.log")).expect("sshd.log");
            let mut child = Command::new(SSHD)
                .arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start sshd");
            if wait_listening(port, &mut child, &d.join("sshd.log")) {
                let host_key = fs::read_to_string(d.join("host_key.pub")).expect("host key");
                let key = host_key
                    .split_whitespace()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ");
                fs::write(d.join("known_hosts"), format!("[127.0.0.1]:{port} {key}\n"))
                    .expect("known_hosts");
                fs::write(d.join("ssh_config"), filled(SSH_CONFIG)).expect("ssh_config");
                return Some(Sshd { dir, port, child });
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let log = fs::read_to_string(d.join("sshd.log")).unwrap_or_default();
        panic!("sshd did not start; its log:\n{log}");
    }

    /// One whose sessions find rscp first on PATH under the name `scp`, as
    /// on a server that has rscp installed as its scp.
    pub fn start_with_rscp_as_scp() -> Option<Sshd> {
        Sshd::start_prepared("SetEnv PATH=@DIR@/bin:/usr/bin:/bin", |dir| {
            let bin = dir.join("bin");
            fs::create_dir_all(&bin).expect("bin dir");
            std::os::unix::fs::symlink(rscp_path(), bin.join("scp")).expect("scp symlink");
        })
    }

    /// One whose sessions run `script(dir)` as `scp` (a shell script put
    /// first on PATH): a remote scp that is slow, dies or waits.
    pub fn start_with_remote_scp(script: impl FnOnce(&Path) -> String) -> Option<Sshd> {
        Sshd::start_prepared("SetEnv PATH=@DIR@/bin:/usr/bin:/bin", |dir| {
            let bin = dir.join("bin");
            fs::create_dir_all(&bin).expect("bin dir");
            fs::write(bin.join("scp"), script(dir)).expect("remote scp script");
            fs::set_permissions(bin.join("scp"), fs::Permissions::from_mode(0o755))
                .expect("chmod remote scp");
        })
    }

    /// The client config to pass with `-F`.
    pub fn ssh_config(&self) -> PathBuf {
        self.dir.path().join("ssh_config")
    }

    /// `127.0.0.1:path`
    pub fn remote(&self, path: impl AsRef<Path>) -> String {
        format!("127.0.0.1:{}", path.as_ref().display())
    }

    /// rscp with its built-in SSH client and `-F <fixture config>`.
    pub fn rscp(&self) -> Command {
        let mut command = rscp();
        command.arg("-F").arg(self.ssh_config());
        command
    }

    /// rscp through OpenSSH's ssh (`-S ssh -F <fixture config>`).
    pub fn rscp_through_ssh(&self) -> Command {
        let mut command = rscp();
        command
            .arg("-S")
            .arg("ssh")
            .arg("-F")
            .arg(self.ssh_config());
        command
    }

    /// OpenSSH's scp in legacy mode against this sshd.
    pub fn openssh_scp(&self) -> Command {
        let mut command = Command::new("scp");
        command.arg("-O").arg("-F").arg(self.ssh_config());
        command
    }

    /// An ssh wrapper for OpenSSH's `scp -S`: it reaches this sshd but runs
    /// rscp, under the name `scp`, on the far side (as a server that has
    /// rscp installed as its scp would).
    pub fn rscp_as_remote_scp_wrapper(&self) -> PathBuf {
        let bin = self.dir.path().join("bin");
        fs::create_dir_all(&bin).expect("bin dir");
        let link = bin.join("scp");
        if !link.exists() {
            std::os::unix::fs::symlink(rscp_path(), &link).expect("scp symlink");
        }
        let wrapper = self.dir.path().join("ssh-to-rscp");
        fs::write(
            &wrapper,
            format!(
                "#!/bin/bash\n\
                 args=(\"$@\")\n\
                 last=${{args[-1]}}\n\
                 unset 'args[-1]'\n\
                 exec ssh -F {config} \"${{args[@]}}\" \"PATH={bin}:\\$PATH $last\"\n",
                config = self.ssh_config().display(),
                bin = bin.display()
            ),
        )
        .expect("wrapper");
        fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).expect("chmod wrapper");
        wrapper
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nix_is_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "rscp-test", "-f"])
        .arg(path)
        .status()
        .expect("run ssh-keygen");
    assert!(status.success(), "ssh-keygen failed");
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

/// Waits until this sshd says it listens on `port`. A connect alone is not
/// enough: another test's server may have taken the same port in the
/// moment between `free_port` and sshd's bind, and answer in its place.
fn wait_listening(port: u16, child: &mut Child, log: &Path) -> bool {
    let listening = format!("Server listening on 127.0.0.1 port {port}.");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        let said = fs::read_to_string(log).unwrap_or_default();
        if said.contains(&listening) {
            return TcpStream::connect(("127.0.0.1", port)).is_ok();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn write(path: impl AsRef<Path>, contents: &[u8]) {
    let path = path.as_ref();
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("create parent");
    }
    let mut file = fs::File::create(path).expect("create file");
    file.write_all(contents).expect("write file");
}

pub fn chmod(path: impl AsRef<Path>, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

pub fn mode(path: impl AsRef<Path>) -> u32 {
    fs::metadata(path).expect("stat").mode() & 0o7777
}

pub fn mtime(path: impl AsRef<Path>) -> i64 {
    fs::metadata(path).expect("stat").mtime()
}

pub fn atime(path: impl AsRef<Path>) -> i64 {
    fs::metadata(path).expect("stat").atime()
}

/// Sets both times of a path (seconds).
pub fn set_times(path: impl AsRef<Path>, mtime: i64, atime: i64) {
    let status = Command::new("touch")
        .arg("-h")
        .arg("-m")
        .arg("-d")
        .arg(format!("@{mtime}"))
        .arg(path.as_ref())
        .status()
        .expect("touch");
    assert!(status.success());
    let status = Command::new("touch")
        .arg("-h")
        .arg("-a")
        .arg("-d")
        .arg(format!("@{atime}"))
        .arg(path.as_ref())
        .status()
        .expect("touch");
    assert!(status.success());
}

/// A sample tree: nested directories, an empty file, an empty directory, a
/// name with spaces and one with non-ASCII letters, a larger file.
pub fn sample_tree(root: &Path) {
    write(root.join("a.txt"), b"alpha\n");
    write(root.join("empty"), b"");
    write(root.join("with space.txt"), b"spaced out\n");
    write(
        root.join("h\u{e9}llo w\u{f6}rld \u{2713}.txt"),
        "unicode \u{2713}\n".as_bytes(),
    );
    write(root.join("sub/deeper/data.bin"), &pattern(700_000, 7));
    write(root.join("sub/b.txt"), b"bravo\n");
    fs::create_dir_all(root.join("emptydir")).expect("emptydir");
    chmod(root.join("a.txt"), 0o640);
    chmod(root.join("sub/b.txt"), 0o600);
}

/// Every entry below `root`, relative, sorted.
pub fn listing(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            out.push(path.strip_prefix(root).expect("prefix").to_path_buf());
            if path.is_dir() {
                todo.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Asserts two trees have the same entries and byte-identical files.
pub fn assert_same_tree(expected: &Path, actual: &Path) {
    assert_eq!(listing(expected), listing(actual), "entries differ");
    for rel in listing(expected) {
        let (e, a) = (expected.join(&rel), actual.join(&rel));
        assert_eq!(e.is_dir(), a.is_dir(), "kind of {}", rel.display());
        if e.is_file() {
            assert!(
                fs::read(&e).unwrap() == fs::read(&a).unwrap(),
                "contents of {}",
                rel.display()
            );
        }
    }
}

/// Asserts modes (and, when `times`, mtimes) match too.
pub fn assert_same_metadata(expected: &Path, actual: &Path, times: bool) {
    for rel in std::iter::once(PathBuf::new()).chain(listing(expected)) {
        let (e, a) = (expected.join(&rel), actual.join(&rel));
        assert_eq!(mode(&e), mode(&a), "mode of {:?}", rel);
        if times {
            assert_eq!(mtime(&e), mtime(&a), "mtime of {:?}", rel);
        }
    }
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs and returns the output, with stdin closed.
pub fn run(command: &mut Command) -> Output {
    command.stdin(Stdio::null()).output().expect("run command")
}

/// Like [`run`], for a command that might hang: killed, and the test
/// failed, if it has not ended within `limit` (a hang, not a speed).
pub fn run_within(command: &mut Command, limit: Duration) -> Output {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start command");
    let pid = child.id();
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match finished.recv_timeout(limit) {
        Ok(output) => output.expect("run command"),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("still running after {limit:?}: a hang");
        }
    }
}

#[track_caller]
pub fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "expected success, got {:?}\nstderr:\n{}",
        output.status,
        stderr(output)
    );
}

#[track_caller]
pub fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "exit status; stderr:\n{}",
        stderr(output)
    );
}

pub fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// This process's umask (children inherit it).
pub fn current_umask() -> u32 {
    let out = Command::new("sh")
        .arg("-c")
        .arg("umask")
        .output()
        .expect("umask");
    u32::from_str_radix(String::from_utf8_lossy(&out.stdout).trim(), 8).expect("octal umask")
}

/// A current-thread runtime, as rscp itself uses.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

impl Sshd {
    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client_key")
    }

    /// The host's public key as `type base64`.
    pub fn host_key(&self) -> String {
        let text = fs::read_to_string(self.dir.path().join("host_key.pub")).expect("host key");
        text.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// `[127.0.0.1]:port type base64`
    pub fn known_hosts_line(&self) -> String {
        format!("[127.0.0.1]:{} {}", self.port, self.host_key())
    }

    /// The pids of the per-connection sshd processes (children of the
    /// listener), to cut connections short.
    pub fn session_pids(&self) -> Vec<i32> {
        let path = format!(
            "/proc/{}/task/{}/children",
            self.child.id(),
            self.child.id()
        );
        fs::read_to_string(path)
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }
}

/// A home directory with `.ssh` set up to reach `sshd` as `fixture`
/// (HostName 127.0.0.1, its port), with the client key as `id_ed25519` and
/// the host key known. `config_extra` opens `.ssh/config`, so its lines
/// apply to every host and win over the defaults below them (BatchMode
/// yes, and HashKnownHosts no against Debian's system-wide yes).
pub struct Home {
    pub dir: tempfile::TempDir,
}

impl Home {
    pub fn for_sshd(sshd: &Sshd, config_extra: &str) -> Home {
        let dir = tempfile::Builder::new()
            .prefix("rscp-home")
            .tempdir()
            .expect("home");
        let ssh = dir.path().join(".ssh");
        fs::create_dir(&ssh).expect(".ssh");
        chmod(&ssh, 0o700);
        fs::copy(sshd.client_key(), ssh.join("id_ed25519")).expect("key");
        chmod(ssh.join("id_ed25519"), 0o600);
        fs::write(
            ssh.join("known_hosts"),
            format!("{}\n", sshd.known_hosts_line()),
        )
        .expect("known_hosts");
        let config = format!(
            "{config_extra}Host fixture\n\tHostName 127.0.0.1\n\tPort {}\nHost *\n\tBatchMode yes\n\tHashKnownHosts no\n",
            sshd.port
        );
        fs::write(ssh.join("config"), config).expect("config");
        chmod(ssh.join("config"), 0o600);
        Home { dir }
    }

    pub fn ssh(&self) -> PathBuf {
        self.dir.path().join(".ssh")
    }

    /// rscp with HOME here and nothing of the caller's ssh setup.
    pub fn rscp(&self) -> Command {
        let mut command = rscp();
        command
            .env("HOME", self.dir.path())
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("SSH_ASKPASS")
            .env_remove("SSH_ASKPASS_REQUIRE")
            .env_remove("DISPLAY");
        command
    }
}

/// An askpass program that answers every question with `answer` and logs
/// the questions (one per line) to `<dir>/askpass.log`.
pub fn askpass(dir: &Path, answer: &str) -> PathBuf {
    let script = dir.join("askpass");
    let log = dir.join("askpass.log");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s|%s\\n' \"$SSH_ASKPASS_PROMPT\" \"$1\" >> '{}'\nprintf '%s\\n' '{answer}'\n",
            log.display()
        ),
    )
    .expect("askpass");
    chmod(&script, 0o755);
    script
}

pub fn is_root() -> bool {
    nix_is_root()
}

/// A throwaway local account with a password and a home of its own, for
/// password and Dropbear tests. Needs root (as in CI); removed on drop.
pub struct TestUser {
    pub name: String,
    pub password: String,
    pub home: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestUser {
    pub fn create() -> Option<TestUser> {
        if !is_root() {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true but not root: cannot create a test user");
            }
            skip("creating a test user needs root");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("rscp-user")
            .tempdir()
            .expect("dir");
        chmod(dir.path(), 0o755);
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let serial = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Unique across test binaries (pid) and within one (serial).
        let name = format!("rscpt{}u{serial}", std::process::id());
        let home = dir.path().join("home");
        let status = Command::new("useradd")
            .args(["-M", "-s", "/bin/sh", "-d"])
            .arg(&home)
            .arg(&name)
            .status()
            .expect("useradd");
        assert!(status.success(), "useradd failed");
        fs::create_dir(&home).expect("home");
        let password = format!("pw-{name}-Secret");
        let mut chpasswd = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .spawn()
            .expect("chpasswd");
        if let Some(stdin) = chpasswd.stdin.as_mut() {
            stdin
                .write_all(format!("{name}:{password}\n").as_bytes())
                .expect("chpasswd input");
        }
        assert!(chpasswd.wait().expect("chpasswd").success());
        let status = Command::new("chown")
            .arg(format!("{name}:"))
            .arg(&home)
            .status()
            .expect("chown");
        assert!(status.success());
        Some(TestUser {
            name,
            password,
            home,
            _dir: dir,
        })
    }

    /// Lets `key.pub` in as this user.
    pub fn authorize(&self, public_key: &Path) {
        let ssh = self.home.join(".ssh");
        fs::create_dir_all(&ssh).expect(".ssh");
        fs::copy(public_key, ssh.join("authorized_keys")).expect("authorized_keys");
        let status = Command::new("chown")
            .arg("-R")
            .arg(format!("{}:", self.name))
            .arg(&ssh)
            .status()
            .expect("chown");
        assert!(status.success());
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("pkill").arg("-u").arg(&self.name).status();
        let _ = Command::new("userdel").arg(&self.name).status();
    }
}

/// A running ssh-agent on its own socket, stopped on drop.
pub struct Agent {
    pub socket: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Agent {
    pub fn start() -> Agent {
        let dir = tempfile::tempdir().expect("agent dir");
        let socket = dir.path().join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ssh-agent");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !socket.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        Agent {
            socket,
            child,
            _dir: dir,
        }
    }

    pub fn add(&self, key: &Path) {
        let out = Command::new("ssh-add")
            .arg(key)
            .env("SSH_AUTH_SOCK", &self.socket)
            .output()
            .expect("ssh-add");
        assert!(
            out.status.success(),
            "ssh-add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Another ed25519 key pair in `dir`, optionally with a passphrase.
pub fn new_key(dir: &Path, name: &str, passphrase: &str) -> PathBuf {
    let path = dir.join(name);
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-C", name, "-N", passphrase, "-f"])
        .arg(&path)
        .status()
        .expect("ssh-keygen");
    assert!(status.success());
    path
}

/// Signs `public_key` with the CA key `ca` (`host`: a host certificate),
/// for `principals`; returns the certificate's path (`<key>-cert.pub`).
pub fn sign(ca: &Path, public_key: &Path, principals: &str, host: bool) -> PathBuf {
    let mut command = Command::new("ssh-keygen");
    command
        .arg("-q")
        .arg("-s")
        .arg(ca)
        .arg("-I")
        .arg("rscp-test")
        .arg("-n")
        .arg(principals)
        .arg("-V")
        .arg("-5m:+1h");
    if host {
        command.arg("-h");
    }
    let status = command.arg(public_key).status().expect("ssh-keygen -s");
    assert!(status.success(), "signing failed");
    let name = public_key
        .file_name()
        .and_then(|n| n.to_str())
        .expect("name");
    public_key.with_file_name(format!("{}-cert.pub", name.trim_end_matches(".pub")))
}

/// The name of the user running the tests.
pub fn whoami() -> String {
    let out = Command::new("id").arg("-un").output().expect("id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// examples/delay_proxy in front of an sshd (`one_way_ms` each way) and a
/// client config that reaches it as `far`; the proxy ends with this.
pub struct Far {
    pub config: PathBuf,
    proxy: Child,
}

impl Drop for Far {
    fn drop(&mut self) {
        let _ = self.proxy.kill();
        let _ = self.proxy.wait();
    }
}

impl Sshd {
    pub fn far(&self, one_way_ms: u64) -> Far {
        use std::io::BufRead;
        let path = rscp_path().parent().unwrap().join("examples/delay_proxy");
        let mut proxy = Command::new(&path)
            .arg(self.port.to_string())
            .arg(one_way_ms.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut port = String::new();
        std::io::BufReader::new(proxy.stdout.take().unwrap())
            .read_line(&mut port)
            .unwrap();
        let port = port.trim().to_owned();
        let dir = self.dir.path();
        let mut known = fs::read_to_string(dir.join("known_hosts")).unwrap();
        known += &format!("[127.0.0.1]:{port} {}\n", self.host_key());
        fs::write(dir.join("known_hosts"), known).unwrap();
        let config = dir.join(format!("far_config_{port}"));
        let fixture = fs::read_to_string(self.ssh_config()).unwrap();
        fs::write(
            &config,
            format!("Host far\n\tHostName 127.0.0.1\n\tPort {port}\n{fixture}"),
        )
        .unwrap();
        Far { config, proxy }
    }
}
