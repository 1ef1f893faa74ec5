//! Connections that break: killed mid-transfer, a peer that silently stops
//! answering, signals while waiting. The run must end with a clear error
//! and exit status 1 within seconds, never hang, never leave children.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

/// Starts uploading `source` to `remote` on the fixture, stderr captured.
fn upload_in_background(home: &Home, source: &Path, remote: &Path) -> Child {
    home.rscp()
        .arg(source)
        .arg(format!("fixture:{}", remote.display()))
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A sparse file big enough that a copy takes a while.
fn big_sparse(path: &Path) {
    let file = fs::File::create(path).unwrap();
    file.set_len(3 << 30).unwrap();
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn size_of(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Waits for the child to exit within `limit`; kills it if it does not.
fn exit_within(child: &mut Child, limit: Duration) -> (Option<i32>, String) {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                use std::io::Read;
                let _ = stderr.read_to_string(&mut err);
            }
            return (status.code(), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_connection_killed_mid_upload_fails_within_seconds() {
    let Some(sshd) = Sshd::start() else { return };
    let home = Home::for_sshd(&sshd, "");
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("big");
    big_sparse(&source);
    let remote = work.path().join("remote-copy");
    let mut child = upload_in_background(&home, &source, &remote);
    wait_until("the upload to start", Duration::from_secs(20), || {
        size_of(&remote) > 1 << 20
    });
    for pid in sshd.session_pids() {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let (code, err) = exit_within(&mut child, Duration::from_secs(10));
    assert_eq!(code, Some(1));
    assert_eq!(err, "rscp: lost connection\n");
    assert!(size_of(&remote) < 3 << 30, "the copy cannot be complete");
}

#[test]
fn a_connection_killed_mid_download_fails_within_seconds() {
    let Some(sshd) = Sshd::start() else { return };
    let home = Home::for_sshd(&sshd, "");
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("big");
    big_sparse(&source);
    let local = work.path().join("local-copy");
    let mut child = home
        .rscp()
        .arg(format!("fixture:{}", source.display()))
        .arg(&local)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The copy is sparse (zeros are not written): watch progress on the
    // remote side instead, through the session's lifetime.
    wait_until("the download to start", Duration::from_secs(20), || {
        local.exists()
    });
    std::thread::sleep(Duration::from_millis(300));
    for pid in sshd.session_pids() {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let (code, err) = exit_within(&mut child, Duration::from_secs(10));
    assert_eq!(code, Some(1));
    assert_eq!(err, "rscp: lost connection\n");
}

/// A ProxyCommand relay that records its process group, so that the test
/// can freeze it (the peer then neither answers nor closes).
fn freezable_proxy(dir: &Path) -> (PathBuf, PathBuf) {
    let pidfile = dir.join("proxy.pid");
    let script = dir.join("proxy.sh");
    fs::write(
        &script,
        format!(
            "#!/bin/bash\necho $$ > '{}'\nexec 3<>/dev/tcp/$1/$2\ncat <&3 &\nexec cat >&3\n",
            pidfile.display()
        ),
    )
    .unwrap();
    chmod(&script, 0o755);
    (script, pidfile)
}

#[test]
fn a_peer_that_stops_answering_is_given_up_on() {
    let Some(sshd) = Sshd::start() else { return };
    let work = tempfile::tempdir().unwrap();
    let (proxy, pidfile) = freezable_proxy(work.path());
    let home = Home::for_sshd(
        &sshd,
        &format!(
            "Host fixture\n\tProxyCommand {} %h %p\n\tServerAliveInterval 1\n\tServerAliveCountMax 2\n",
            proxy.display()
        ),
    );
    let source = work.path().join("big");
    big_sparse(&source);
    let remote = work.path().join("remote-copy");
    let mut child = upload_in_background(&home, &source, &remote);
    wait_until("the upload to start", Duration::from_secs(20), || {
        size_of(&remote) > 1 << 20
    });
    let group: i32 = fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    killpg(Pid::from_raw(group), Signal::SIGSTOP).unwrap();
    let started = Instant::now();
    let (code, err) = exit_within(&mut child, Duration::from_secs(20));
    let _ = killpg(Pid::from_raw(group), Signal::SIGCONT);
    assert_eq!(code, Some(1));
    assert_eq!(err, "rscp: lost connection\n");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn sigterm_while_connecting_ends_the_run_and_the_proxy() {
    let Some(sshd) = Sshd::start() else { return };
    let work = tempfile::tempdir().unwrap();
    let pidfile = work.path().join("proxy.pid");
    let proxy = work.path().join("silent.sh");
    fs::write(
        &proxy,
        format!(
            "#!/bin/sh\necho $$ > '{}'\nsleep 60 &\nwait\n",
            pidfile.display()
        ),
    )
    .unwrap();
    chmod(&proxy, 0o755);
    let home = Home::for_sshd(
        &sshd,
        &format!("Host fixture\n\tProxyCommand {}\n", proxy.display()),
    );
    write(work.path().join("f"), b"x");
    let mut child = home
        .rscp()
        .arg(work.path().join("f"))
        .arg("fixture:/tmp/never")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the proxy to start", Duration::from_secs(10), || {
        fs::read_to_string(&pidfile).is_ok_and(|t| t.ends_with('\n'))
    });
    let proxy_pid: i32 = fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    // exit_within is the check: a run that ignored the signal would wait
    // for the proxy for good.
    let (code, _) = exit_within(&mut child, Duration::from_secs(5));
    assert_eq!(code, Some(1));
    // The proxy and its own child (the sleep) are gone.
    wait_until("the proxy group to go", Duration::from_secs(2), || {
        killpg(Pid::from_raw(proxy_pid), None).is_err()
    });
}

#[test]
fn sigterm_during_a_stalled_upload_ends_it_within_a_second() {
    let Some(sshd) = Sshd::start() else { return };
    let work = tempfile::tempdir().unwrap();
    let (proxy, pidfile) = freezable_proxy(work.path());
    let home = Home::for_sshd(
        &sshd,
        &format!("Host fixture\n\tProxyCommand {} %h %p\n", proxy.display()),
    );
    let source = work.path().join("big");
    big_sparse(&source);
    let remote = work.path().join("remote-copy");
    let mut child = upload_in_background(&home, &source, &remote);
    wait_until("the upload to start", Duration::from_secs(20), || {
        size_of(&remote) > 1 << 20
    });
    let group: i32 = fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    killpg(Pid::from_raw(group), Signal::SIGSTOP).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let (code, _) = exit_within(&mut child, Duration::from_secs(5));
    // Let the stopped group see the SIGTERM it was sent.
    let _ = killpg(Pid::from_raw(group), Signal::SIGCONT);
    assert_eq!(code, Some(1));
    wait_until("the proxy group to go", Duration::from_secs(2), || {
        killpg(Pid::from_raw(group), None).is_err()
    });
}

/// A remote scp that exits (status 0) in the middle of an upload: the
/// data still to go waits for window space that will never come. The end
/// of the channel ends the session with an error, never a wait.
#[test]
fn a_remote_scp_that_exits_mid_upload_ends_the_session() {
    let Some(sshd) = Sshd::start_prepared("ForceCommand @DIR@/quitter", |dir| {
        let script = dir.join("quitter");
        fs::write(
            &script,
            "#!/bin/sh\n\
             printf '\\0'\n\
             IFS= read -r record\n\
             printf '\\0'\n\
             head -c 1000000 >/dev/null\n\
             exit 0\n",
        )
        .unwrap();
        chmod(&script, 0o755);
    }) else {
        return;
    };
    let home = Home::for_sshd(&sshd, "");
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("big");
    big_sparse(&source);
    let mut child = upload_in_background(&home, &source, &work.path().join("copy"));
    let (code, err) = exit_within(&mut child, Duration::from_secs(20));
    assert_eq!(code, Some(1));
    assert_eq!(err, "rscp: lost connection\n");
}
