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
    eprintln!("skipping: OpenSSH server or client not installed");
    false
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

    /// Starts one with extra sshd_config lines.
    pub fn start_with(extra: &str) -> Option<Sshd> {
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
            fs::write(&config, filled(SSHD_CONFIG) + extra + "\n").expect("sshd_config");
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
            if wait_listening(port, &mut child) {
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

fn wait_listening(port: u16, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
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
