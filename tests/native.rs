//! rscp's built-in SSH client against the OpenSSH fixture: the user's
//! ~/.ssh setup, host keys, authentication, ways of reaching the host.

mod common;
/// The benchmark's delay proxy, run in-process for the window test.
#[path = "../examples/delay_proxy.rs"]
#[allow(dead_code)]
mod delay_proxy;

use std::fs;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::*;

/// A file to copy and an empty directory to copy it into.
fn payload() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("payload.bin");
    write(&file, &pattern(300_000, 42));
    let into = work.path().join("into");
    fs::create_dir(&into).unwrap();
    (work, file, into)
}

#[test]
fn home_ssh_alone_is_enough_without_any_ssh_binary() {
    let Some(sshd) = Sshd::start() else { return };
    let home = Home::for_sshd(&sshd, "");
    let (work, file, into) = payload();
    // PATH holds nothing: no ssh, no scp on this side.
    let empty_path = work.path().join("empty-bin");
    fs::create_dir(&empty_path).unwrap();
    let out = run(home
        .rscp()
        .env("PATH", &empty_path)
        .arg(&file)
        .arg(format!("fixture:{}", into.display())));
    assert_success(&out);
    assert_eq!(stderr(&out), "");
    assert!(fs::read(into.join("payload.bin")).unwrap() == fs::read(&file).unwrap());

    let out = run(home
        .rscp()
        .env("PATH", &empty_path)
        .arg(format!("fixture:{}", into.join("payload.bin").display()))
        .arg(work.path().join("back")));
    assert_success(&out);
    assert!(fs::read(work.path().join("back")).unwrap() == fs::read(&file).unwrap());
}

#[test]
fn config_host_match_and_include() {
    let Some(sshd) = Sshd::start() else { return };
    // The alias only becomes reachable through the included file and a
    // Match that sees the HostName obtained so far.
    let home = Home::for_sshd(&sshd, "Include conf.d/*.conf\n");
    fs::create_dir(home.ssh().join("conf.d")).unwrap();
    write(
        home.ssh().join("conf.d/10-alias.conf"),
        format!(
            "Host nickname !other\n\tHostName 127.0.0.1\nMatch host 127.0.0.1 originalhost nickname\n\tPort {}\n\tUser {}\n",
            sshd.port,
            whoami()
        )
        .as_bytes(),
    );
    chmod(home.ssh().join("conf.d/10-alias.conf"), 0o600);
    let (_work, file, into) = payload();
    let out = run(home
        .rscp()
        .arg(&file)
        .arg(format!("nickname:{}", into.display())));
    assert_success(&out);
    assert!(into.join("payload.bin").exists());
}

#[test]
fn unknown_keywords_fail_like_ssh() {
    let Some(sshd) = Sshd::start() else { return };
    let home = Home::for_sshd(&sshd, "\tNoSuchKeyword yes\n");
    let (_work, file, into) = payload();
    let out = run(home
        .rscp()
        .arg(&file)
        .arg(format!("fixture:{}", into.display())));
    assert_exit(&out, 1);
    let config = home.ssh().join("config");
    assert_eq!(
        stderr(&out),
        format!(
            "rscp: {0} line 1: Bad configuration option: NoSuchKeyword\nrscp: {0}: terminating, 1 bad configuration options\n",
            config.display()
        )
    );
    // IgnoreUnknown lets it through.
    let home = Home::for_sshd(&sshd, "\tIgnoreUnknown NoSuch*\n\tNoSuchKeyword yes\n");
    let out = run(home
        .rscp()
        .arg(&file)
        .arg(format!("fixture:{}", into.display())));
    assert_success(&out);
}

/// The fixture reached with the given known_hosts content and checking.
fn with_known_hosts(sshd: &Sshd, known_hosts: &str, extra: &str) -> Home {
    let home = Home::for_sshd(sshd, extra);
    fs::write(home.ssh().join("known_hosts"), known_hosts).unwrap();
    home
}

#[test]
fn an_unknown_host_key_is_refused_under_strict_checking() {
    let Some(sshd) = Sshd::start() else { return };
    let home = with_known_hosts(&sshd, "", "\tStrictHostKeyChecking yes\n");
    let (_work, file, into) = payload();
    let out = run(home
        .rscp()
        .arg(&file)
        .arg(format!("fixture:{}", into.display())));
    assert_exit(&out, 1);
    assert_eq!(
        stderr(&out),
        format!(
            "No ED25519 host key is known for [127.0.0.1]:{} and you have requested strict checking.\n\
             rscp: Host key verification failed.\n",
            sshd.port
        )
    );
    assert!(!into.join("payload.bin").exists());
}

#[test]
fn accept_new_learns_the_key_as_ssh_writes_it() {
    let Some(sshd) = Sshd::start() else { return };
    let home = with_known_hosts(&sshd, "", "\tStrictHostKeyChecking accept-new\n");
    let (_work, file, into) = payload();
    let target = format!("fixture:{}", into.display());
    let out = run(home.rscp().arg(&file).arg(&target));
    assert_success(&out);
    assert_eq!(
        stderr(&out),
        format!(
            "Warning: Permanently added '[127.0.0.1]:{}' (ED25519) to the list of known hosts.\n",
            sshd.port
        )
    );
    assert_eq!(
        fs::read_to_string(home.ssh().join("known_hosts")).unwrap(),
        format!("{}\n", sshd.known_hosts_line())
    );
    // Known now: silent, and accepted under strict checking.
    let out = run(home
        .rscp()
        .arg("-oStrictHostKeyChecking=yes")
        .arg(&file)
        .arg(&target));
    assert_success(&out);
    assert_eq!(stderr(&out), "");
}

#[test]
fn hashed_known_hosts_are_written_and_read() {
    let Some(sshd) = Sshd::start() else { return };
    let home = with_known_hosts(
        &sshd,
        "",
        "\tStrictHostKeyChecking accept-new\n\tHashKnownHosts yes\n",
    );
    let (_work, file, into) = payload();
    let target = format!("fixture:{}", into.display());
    let out = run(home.rscp().arg("-q").arg(&file).arg(&target));
    assert_success(&out);
    assert_eq!(stderr(&out), "", "-q hides the warning");
    let written = fs::read_to_string(home.ssh().join("known_hosts")).unwrap();
    assert!(written.starts_with("|1|"), "{written}");
    assert!(!written.contains("127.0.0.1"), "{written}");
    // OpenSSH's ssh-keygen finds the hashed entry too.
    let found = std::process::Command::new("ssh-keygen")
        .arg("-F")
        .arg(format!("[127.0.0.1]:{}", sshd.port))
        .arg("-f")
        .arg(home.ssh().join("known_hosts"))
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "ssh-keygen -F did not find the entry"
    );
    let out = run(home
        .rscp()
        .arg("-oStrictHostKeyChecking=yes")
        .arg(&file)
        .arg(&target));
    assert_success(&out);
}

/// Another key than the fixture's host key, as `type base64`.
fn other_host_key(sshd: &Sshd) -> String {
    let other = new_key(sshd.dir.path(), "other_host_key", "");
    let text = fs::read_to_string(other.with_extension("pub")).unwrap();
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn a_changed_host_key_is_refused_loudly() {
    let Some(sshd) = Sshd::start() else { return };
    let other_key = other_host_key(&sshd);
    let line = format!("[127.0.0.1]:{} {other_key}\n", sshd.port);
    let home = with_known_hosts(&sshd, &line, "\tStrictHostKeyChecking ask\n");
    let (_work, file, into) = payload();
    let out = run(home
        .rscp()
        .arg(&file)
        .arg(format!("fixture:{}", into.display())));
    assert_exit(&out, 1);
    let known_hosts = home.ssh().join("known_hosts");
    let fingerprint = fingerprint_of(&sshd);
    assert_eq!(
        stderr(&out),
        format!(
            "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
             @    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n\
             @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
             IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\n\
             Someone could be eavesdropping on you right now (man-in-the-middle attack)!\n\
             It is also possible that a host key has just been changed.\n\
             The fingerprint for the ED25519 key sent by the remote host is\n\
             {fingerprint}.\n\
             Please contact your system administrator.\n\
             Add correct host key in {kh} to get rid of this message.\n\
             Offending ED25519 key in {kh}:1\n  \
             remove with:\n  \
             ssh-keygen -f \"{kh}\" -R \"[127.0.0.1]:{port}\"\n\
             Host key for [127.0.0.1]:{port} has changed and you have requested strict checking.\n\
             rscp: Host key verification failed.\n",
            kh = known_hosts.display(),
            port = sshd.port
        )
    );
    assert!(!into.join("payload.bin").exists());

    // With checking off: the warning, then key authentication only.
    let out = run(home
        .rscp()
        .arg("-oStrictHostKeyChecking=no")
        .arg(&file)
        .arg(format!("fixture:{}", into.display())));
    assert_success(&out);
    assert!(stderr(&out).contains("WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!"));
    assert!(stderr(&out).ends_with(
        "Password authentication is disabled to avoid man-in-the-middle attacks.\n\
         Keyboard-interactive authentication is disabled to avoid man-in-the-middle attacks.\n"
    ));
    assert!(into.join("payload.bin").exists());
}

fn fingerprint_of(sshd: &Sshd) -> String {
    let out = std::process::Command::new("ssh-keygen")
        .arg("-lf")
        .arg(sshd.dir.path().join("host_key.pub"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned()
}

/// One byte that is not UTF-8 (a comment, a legacy entry) must not hide
/// the rest of the file: the changed key is refused, even with accept-new,
/// and the file is left as it was.
#[test]
fn a_known_hosts_file_with_bytes_that_are_not_text_still_counts() {
    let Some(sshd) = Sshd::start() else { return };
    let other_key = other_host_key(&sshd);
    let mut contents = b"# caf\xe9 \xff\n".to_vec();
    contents.extend_from_slice(format!("[127.0.0.1]:{} {other_key}\n", sshd.port).as_bytes());
    contents.extend_from_slice(b"legacy\xfe ssh-rsa AAAA\xff\n");
    let home = with_known_hosts(&sshd, "", "\tStrictHostKeyChecking accept-new\n");
    let known_hosts = home.ssh().join("known_hosts");
    fs::write(&known_hosts, &contents).unwrap();
    let (_work, file, into) = payload();
    let out = run(home
        .rscp()
        .arg(&file)
        .arg(format!("fixture:{}", into.display())));
    assert_exit(&out, 1);
    let text = stderr(&out);
    assert!(
        text.contains("@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "Offending ED25519 key in {}:2\n",
            known_hosts.display()
        )),
        "{text}"
    );
    assert!(text.ends_with(&format!(
        "Host key for [127.0.0.1]:{} has changed and you have requested strict checking.\n\
         rscp: Host key verification failed.\n",
        sshd.port
    )));
    assert_eq!(fs::read(&known_hosts).unwrap(), contents);
    assert!(!into.join("payload.bin").exists());
}

#[test]
fn a_revoked_host_key_is_refused() {
    let Some(sshd) = Sshd::start() else { return };
    let known = format!(
        "{}\n@revoked * {}\n",
        sshd.known_hosts_line(),
        sshd.host_key()
    );
    let home = with_known_hosts(&sshd, &known, "");
    let (_work, file, into) = payload();
    let out = run(home
        .rscp()
        .arg(&file)
        .arg(format!("fixture:{}", into.display())));
    assert_exit(&out, 1);
    assert_eq!(
        stderr(&out),
        format!(
            "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
             @       WARNING: REVOKED HOST KEY DETECTED!               @\n\
             @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
             The ED25519 host key for [127.0.0.1]:{port} is marked as revoked.\n\
             This could mean that a stolen key is being used to\n\
             impersonate this host.\n\
             ED25519 host key for [127.0.0.1]:{port} was revoked and you have requested strict checking.\n\
             rscp: Host key verification failed.\n",
            port = sshd.port
        )
    );
}

#[test]
fn known_hosts_patterns_ports_and_aliases() {
    let Some(sshd) = Sshd::start() else { return };
    let (_work, file, into) = payload();
    let target = format!("fixture:{}", into.display());
    let key = sshd.host_key();
    let strict = "\tStrictHostKeyChecking yes\n";
    // Nothing known under [host]:port: ssh looks again without the port,
    // where only a matching key counts (checked against ssh 9.2 here).
    let home = with_known_hosts(&sshd, &format!("127.0.0.1 {key}\n"), strict);
    assert_success(&run(home.rscp().arg(&file).arg(&target)));
    let other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBXYjZf5mLRBWrDC6leU4slu/+uAr+z8nCgLeCmbtsC3";
    let home = with_known_hosts(&sshd, &format!("127.0.0.1 {other}\n"), strict);
    let out = run(home.rscp().arg(&file).arg(&target));
    assert_exit(&out, 1);
    assert_eq!(
        stderr(&out),
        format!(
            "No ED25519 host key is known for [127.0.0.1]:{} and you have requested strict checking.\n\
             rscp: Host key verification failed.\n",
            sshd.port
        )
    );
    let home = with_known_hosts(
        &sshd,
        &format!("127.0.0.1 {key}\n"),
        "\tStrictHostKeyChecking yes\n\tHostKeyAlias [127.0.0.1]:1\n",
    );
    assert_exit(&run(home.rscp().arg(&file).arg(&target)), 1);
    // Wildcards, lists and negation (the second look finds `*`, as ssh's).
    for (entry, ok) in [
        (format!("[127.0.0.*]:{},other {key}", sshd.port), true),
        (format!("[127.0.0.1]:*,!nothing {key}"), true),
        (format!("*,![127.0.0.1]:{} {key}", sshd.port), true),
        (
            format!("*,!127.0.0.1,![127.0.0.1]:{} {key}", sshd.port),
            false,
        ),
    ] {
        let home = with_known_hosts(&sshd, &format!("{entry}\n"), strict);
        let out = run(home.rscp().arg(&file).arg(&target));
        assert_eq!(out.status.success(), ok, "{entry}: {}", stderr(&out));
    }
    // HostKeyAlias names the entry instead.
    let home = with_known_hosts(
        &sshd,
        &format!("myalias {key}\n"),
        "\tStrictHostKeyChecking yes\n\tHostKeyAlias myalias\n",
    );
    assert_success(&run(home.rscp().arg(&file).arg(&target)));
    // Several files: GlobalKnownHostsFile is read too.
    let global = home.dir.path().join("global_known_hosts");
    fs::write(&global, format!("{}\n", sshd.known_hosts_line())).unwrap();
    let home = with_known_hosts(
        &sshd,
        "",
        &format!(
            "\tStrictHostKeyChecking yes\n\tGlobalKnownHostsFile {}\n",
            global.display()
        ),
    );
    assert_success(&run(home.rscp().arg(&file).arg(&target)));
}

#[test]
fn ask_without_a_terminal_fails_at_once_and_askpass_can_confirm() {
    let Some(sshd) = Sshd::start() else { return };
    let home = with_known_hosts(&sshd, "", "\tStrictHostKeyChecking ask\n\tBatchMode no\n");
    let (work, file, into) = payload();
    let target = format!("fixture:{}", into.display());
    let started = Instant::now();
    let out = run(home
        .rscp()
        .arg(&file)
        .arg(&target)
        .env("TERM", "dumb")
        .stdin(std::process::Stdio::null())
        .env("SSH_ASKPASS_REQUIRE", "never"));
    assert_exit(&out, 1);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(stderr(&out), "rscp: Host key verification failed.\n");

    let confirming = askpass(work.path(), "yes");
    let out = run(home
        .rscp()
        .arg(&file)
        .arg(&target)
        .env("SSH_ASKPASS", &confirming)
        .env("SSH_ASKPASS_REQUIRE", "force"));
    assert_success(&out);
    let asked = fs::read_to_string(work.path().join("askpass.log")).unwrap();
    assert!(
        asked.starts_with(&format!(
            "confirm|The authenticity of host '[127.0.0.1]:{port} ([127.0.0.1]:{port})' can't be established.\n",
            port = sshd.port
        )),
        "{asked}"
    );
    assert!(
        asked.contains(&format!(
            "ED25519 key fingerprint is {}.",
            fingerprint_of(&sshd)
        )),
        "{asked}"
    );
    assert!(
        fs::read_to_string(home.ssh().join("known_hosts"))
            .unwrap()
            .contains(&sshd.host_key())
    );
}

#[test]
fn keys_from_an_agent_and_a_dead_agent_socket() {
    let Some(sshd) = Sshd::start() else { return };
    let agent = Agent::start();
    agent.add(&sshd.client_key());
    let home = Home::for_sshd(&sshd, "");
    // No key file at all: only the agent holds the key.
    fs::remove_file(home.ssh().join("id_ed25519")).unwrap();
    let (_work, file, into) = payload();
    let target = format!("fixture:{}", into.display());
    let out = run(home
        .rscp()
        .env("SSH_AUTH_SOCK", &agent.socket)
        .arg(&file)
        .arg(&target));
    assert_success(&out);

    // IdentityAgent names the socket too.
    let out = run(home
        .rscp()
        .arg(format!("-oIdentityAgent={}", agent.socket.display()))
        .arg(&file)
        .arg(&target));
    assert_success(&out);

    // A dead socket: the key file is used instead.
    let home = Home::for_sshd(&sshd, "");
    let out = run(home
        .rscp()
        .env("SSH_AUTH_SOCK", "/nonexistent/agent.sock")
        .arg(&file)
        .arg(&target));
    assert_success(&out);
}

#[test]
fn identities_only_keeps_other_agent_keys_out() {
    let Some(sshd) = Sshd::start() else { return };
    let agent = Agent::start();
    agent.add(&sshd.client_key());
    let stranger = new_key(sshd.dir.path(), "stranger", "");
    let home = Home::for_sshd(
        &sshd,
        &format!(
            "\tIdentityFile {}\n\tIdentitiesOnly yes\n",
            stranger.display()
        ),
    );
    let (_work, file, into) = payload();
    let out = run(home
        .rscp()
        .env("SSH_AUTH_SOCK", &agent.socket)
        .arg(&file)
        .arg(format!("fixture:{}", into.display())));
    assert_exit(&out, 1);
    assert_eq!(
        stderr(&out),
        format!(
            "rscp: {}@127.0.0.1: Permission denied (publickey).\n",
            whoami()
        )
    );
}

#[test]
fn an_encrypted_key_through_askpass() {
    let Some(sshd) = Sshd::start() else { return };
    let locked = new_key(sshd.dir.path(), "locked", "s3cret phrase");
    fs::copy(
        locked.with_extension("pub"),
        sshd.dir.path().join("authorized_keys"),
    )
    .unwrap();
    let home = Home::for_sshd(
        &sshd,
        &format!("\tIdentityFile {}\n\tBatchMode no\n", locked.display()),
    );
    let (work, file, into) = payload();
    let target = format!("fixture:{}", into.display());

    let right = askpass(work.path(), "s3cret phrase");
    let out = run(home
        .rscp()
        .arg(&file)
        .arg(&target)
        .env("SSH_ASKPASS", &right)
        .env("SSH_ASKPASS_REQUIRE", "force"));
    assert_success(&out);
    assert_eq!(
        fs::read_to_string(work.path().join("askpass.log")).unwrap(),
        format!("|Enter passphrase for key '{}': \n", locked.display())
    );

    // A wrong answer: asked again, as often as NumberOfPasswordPrompts.
    let wrong = askpass(work.path(), "wrong");
    fs::remove_file(work.path().join("askpass.log")).unwrap();
    let out = run(home
        .rscp()
        .arg("-oNumberOfPasswordPrompts=2")
        .arg(&file)
        .arg(&target)
        .env("SSH_ASKPASS", &wrong)
        .env("SSH_ASKPASS_REQUIRE", "force"));
    assert_exit(&out, 1);
    let asked = fs::read_to_string(work.path().join("askpass.log")).unwrap();
    assert_eq!(
        asked,
        format!(
            "|Enter passphrase for key '{0}': \n|Bad passphrase, try again for {0}: \n",
            locked.display()
        )
    );

    // BatchMode: never asks, fails at once.
    let started = Instant::now();
    let out = run(home.rscp().arg("-B").arg(&file).arg(&target));
    assert_exit(&out, 1);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        stderr(&out),
        format!(
            "rscp: {}@127.0.0.1: Permission denied (publickey).\n",
            whoami()
        )
    );
}

/// A second sshd that also takes passwords, and a local user to log in as.
fn password_server() -> Option<(Sshd, TestUser)> {
    let sshd = Sshd::start_with("PasswordAuthentication yes\nAuthenticationMethods password")?;
    let user = TestUser::create()?;
    Some((sshd, user))
}

/// An upload target the test user may write to.
fn writable_dir(user: &TestUser) -> std::path::PathBuf {
    let dir = user.home.join("in");
    fs::create_dir_all(&dir).unwrap();
    let status = std::process::Command::new("chown")
        .arg(format!("{}:", user.name))
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    dir
}

#[test]
fn password_authentication_through_askpass() {
    let Some((sshd, user)) = password_server() else {
        return;
    };
    let home = Home::for_sshd(&sshd, "\tBatchMode no\n");
    let (work, file, _into) = payload();
    let into = writable_dir(&user);
    let target = format!("{}@fixture:{}", user.name, into.display());

    let answering = askpass(work.path(), &user.password);
    let out = run(home
        .rscp()
        .arg(&file)
        .arg(&target)
        .env("SSH_ASKPASS", &answering)
        .env("SSH_ASKPASS_REQUIRE", "force"));
    assert_success(&out);
    assert!(fs::read(into.join("payload.bin")).unwrap() == fs::read(&file).unwrap());
    assert_eq!(
        fs::read_to_string(work.path().join("askpass.log")).unwrap(),
        format!("|{}@127.0.0.1's password: \n", user.name)
    );
}

#[test]
fn a_wrong_password_is_asked_again_then_refused() {
    let Some((sshd, user)) = password_server() else {
        return;
    };
    let home = Home::for_sshd(&sshd, "\tBatchMode no\n\tNumberOfPasswordPrompts 2\n");
    let (work, file, _into) = payload();
    let target = format!("{}@fixture:/tmp", user.name);
    let wrong = askpass(work.path(), "not the password");
    let started = Instant::now();
    let out = run(home
        .rscp()
        .arg(&file)
        .arg(&target)
        .env("SSH_ASKPASS", &wrong)
        .env("SSH_ASKPASS_REQUIRE", "force"));
    assert_exit(&out, 1);
    assert_eq!(
        stderr(&out),
        format!(
            "rscp: Permission denied, please try again.\nrscp: {}@127.0.0.1: Permission denied (password).\n",
            user.name
        )
    );
    assert_eq!(
        fs::read_to_string(work.path().join("askpass.log"))
            .unwrap()
            .lines()
            .count(),
        2
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn without_a_way_to_ask_password_authentication_fails_at_once() {
    let Some((sshd, user)) = password_server() else {
        return;
    };
    let (_work, file, _into) = payload();
    let target = format!("{}@fixture:/tmp", user.name);
    let expected = format!(
        "rscp: {}@127.0.0.1: Permission denied (password).\n",
        user.name
    );
    // BatchMode.
    let home = Home::for_sshd(&sshd, "");
    let started = Instant::now();
    let out = run(home.rscp().arg(&file).arg(&target));
    assert_exit(&out, 1);
    assert_eq!(stderr(&out), expected);
    // No terminal (setsid detaches it) and no askpass.
    let home = Home::for_sshd(&sshd, "\tBatchMode no\n");
    let mut command = std::process::Command::new("setsid");
    command
        .arg(rscp_path())
        .arg(&file)
        .arg(&target)
        .env("HOME", home.dir.path())
        .env("SSH_ASKPASS_REQUIRE", "never")
        .env_remove("SSH_AUTH_SOCK");
    let out = run(&mut command);
    assert_exit(&out, 1);
    assert_eq!(stderr(&out), expected);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "waited for input that cannot come"
    );
}

#[test]
fn proxy_jump_through_another_sshd() {
    let Some(target) = Sshd::start() else { return };
    let Some(jump) = Sshd::start() else { return };
    let home = Home::for_sshd(
        &target,
        &format!(
            "Host jumphost\n\tHostName 127.0.0.1\n\tPort {}\n\tUserKnownHostsFile {}\n",
            jump.port,
            jump.dir.path().join("known_hosts").display()
        ),
    );
    fs::copy(
        target.client_key(),
        jump.dir.path().join("authorized_keys_extra"),
    )
    .unwrap();
    fs::copy(
        target.dir.path().join("client_key.pub"),
        jump.dir.path().join("authorized_keys"),
    )
    .unwrap();
    let (_work, file, into) = payload();
    let out = run(home
        .rscp()
        .arg("-J")
        .arg("jumphost")
        .arg(&file)
        .arg(format!("fixture:{}", into.display())));
    assert_success(&out);
    assert!(into.join("payload.bin").exists());
    // The jump host saw a login, and was asked to open the way onwards.
    let log = jump.log();
    assert!(log.contains("Accepted publickey"), "jump host log:\n{log}");

    // A chain of two jumps through the same host works as well.
    let out = run(home
        .rscp()
        .arg("-oProxyJump=jumphost,jumphost")
        .arg(&file)
        .arg(format!("fixture:{}", into.join("again.bin").display())));
    assert_success(&out);
    assert!(into.join("again.bin").exists());
}

#[test]
fn proxy_command_carries_the_session() {
    let Some(sshd) = Sshd::start() else { return };
    let (work, file, into) = payload();
    let marker = work.path().join("proxy-ran");
    let proxy = work.path().join("proxy.sh");
    fs::write(
        &proxy,
        format!(
            "#!/bin/bash\necho \"$1 $2\" > '{}'\nexec 3<>/dev/tcp/$1/$2\ncat <&3 &\nexec cat >&3\n",
            marker.display()
        ),
    )
    .unwrap();
    chmod(&proxy, 0o755);
    let home = Home::for_sshd(
        &sshd,
        &format!("Host fixture\n\tProxyCommand {} %h %p\n", proxy.display()),
    );
    let out = run(home
        .rscp()
        .arg(&file)
        .arg(format!("fixture:{}", into.display())));
    assert_success(&out);
    assert_eq!(
        fs::read_to_string(&marker).unwrap(),
        format!("127.0.0.1 {}\n", sshd.port)
    );
    assert!(into.join("payload.bin").exists());
}

fn has_ipv6_loopback() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

#[test]
fn address_families() {
    let Some(sshd) = Sshd::start() else { return };
    let (_work, file, into) = payload();
    let home = Home::for_sshd(
        &sshd,
        &format!(
            "Host loop\n\tHostName localhost\n\tPort {}\n\tHostKeyAlias [127.0.0.1]:{}\n",
            sshd.port, sshd.port
        ),
    );
    // The fixture listens on 127.0.0.1 only.
    let out = run(home
        .rscp()
        .arg("-4")
        .arg(&file)
        .arg(format!("loop:{}", into.display())));
    assert_success(&out);
    let out = run(home
        .rscp()
        .arg("-6")
        .arg(&file)
        .arg(format!("loop:{}", into.display())));
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(
        err == format!(
            "rscp: connect to host localhost port {}: Connection refused\n",
            sshd.port
        ) || err
            == "rscp: Could not resolve hostname localhost: Address family for hostname not supported\n",
        "{err}"
    );
    if !has_ipv6_loopback() {
        eprintln!("no IPv6 loopback here: the IPv6 copy is not tried");
        return;
    }
    let Some(sshd6) = Sshd::start_with("ListenAddress [::1]:@PORT@") else {
        return;
    };
    let home = Home::for_sshd(
        &sshd6,
        &format!(
            "Host v6\n\tHostName ::1\n\tPort {}\n\tHostKeyAlias [127.0.0.1]:{}\n",
            sshd6.port, sshd6.port
        ),
    );
    let out = run(home
        .rscp()
        .arg("-6")
        .arg(&file)
        .arg(format!("v6:{}", into.join("v6.bin").display())));
    assert_success(&out);
    let out = run(home
        .rscp()
        .arg(&file)
        .arg(format!("[::1]:{}", into.join("v6b.bin").display()))
        .arg("-oHostKeyAlias=x"));
    assert_eq!(
        out.status.code(),
        Some(1),
        "the bracketed operand is its own host, with its own settings"
    );
}

#[test]
fn one_connection_serves_every_operand_on_a_host() {
    let Some(sshd) = Sshd::start() else { return };
    let home = Home::for_sshd(&sshd, "");
    let work = tempfile::tempdir().unwrap();
    for name in ["a", "b", "c"] {
        write(work.path().join("remote").join(name), name.as_bytes());
    }
    fs::create_dir(work.path().join("down")).unwrap();
    let before = sshd.log().matches("Accepted publickey").count();
    let mut command = home.rscp();
    for name in ["a", "b", "c"] {
        command.arg(format!(
            "fixture:{}",
            work.path().join("remote").join(name).display()
        ));
    }
    let out = run(command.arg(work.path().join("down")));
    assert_success(&out);
    assert_eq!(listing(&work.path().join("down")).len(), 3);
    let after = sshd.log().matches("Accepted publickey").count();
    assert_eq!(after - before, 1, "three sources, one login");
}

#[test]
fn ciphers_and_compression_as_asked() {
    let Some(sshd) = Sshd::start() else { return };
    let home = Home::for_sshd(&sshd, "");
    let (_work, file, into) = payload();
    let target = format!("fixture:{}", into.display());
    for cipher in [
        "aes128-ctr",
        "aes256-gcm@openssh.com",
        "chacha20-poly1305@openssh.com",
    ] {
        let out = run(home
            .rscp()
            .arg("-v")
            .arg("-c")
            .arg(cipher)
            .arg(&file)
            .arg(&target));
        assert_success(&out);
        assert!(
            stderr(&out).contains(&format!("kex: cipher: {cipher} ")),
            "{cipher}: {}",
            stderr(&out)
        );
    }
    let out = run(home.rscp().arg("-v").arg("-C").arg(&file).arg(&target));
    assert_success(&out);
    assert!(
        stderr(&out).contains("compression: Zlib"),
        "{}",
        stderr(&out)
    );
    let out = run(home
        .rscp()
        .arg("-c")
        .arg("rot13-cbc")
        .arg(&file)
        .arg(&target));
    assert_exit(&out, 1);
    assert_eq!(stderr(&out), "rscp: no supported ciphers in 'rot13-cbc'\n");
}

#[test]
fn a_user_certificate_signed_by_a_trusted_authority() {
    let Some(sshd) = Sshd::start_prepared("TrustedUserCAKeys @DIR@/user_ca.pub", |dir| {
        new_key(dir, "user_ca", "");
    }) else {
        return;
    };
    // Only the certificate can get in now.
    fs::write(sshd.dir.path().join("authorized_keys"), "").unwrap();
    let home = Home::for_sshd(&sshd, "");
    let key = home.ssh().join("id_ed25519");
    fs::copy(
        sshd.dir.path().join("client_key.pub"),
        home.ssh().join("id_ed25519.pub"),
    )
    .unwrap();
    let (_work, file, into) = payload();
    let target = format!("fixture:{}", into.display());
    let out = run(home.rscp().arg(&file).arg(&target));
    assert_exit(&out, 1);

    // Beside the key, found by name.
    let cert = sign(
        &sshd.dir.path().join("user_ca"),
        &home.ssh().join("id_ed25519.pub"),
        &whoami(),
        false,
    );
    assert_eq!(cert, home.ssh().join("id_ed25519-cert.pub"));
    let out = run(home.rscp().arg("-v").arg(&file).arg(&target));
    assert_success(&out);
    assert!(
        stderr(&out).contains("debug1: Offering public key certificate: ED25519"),
        "{}",
        stderr(&out)
    );

    // Elsewhere, named by CertificateFile.
    let moved = home.dir.path().join("elsewhere-cert.pub");
    fs::rename(&cert, &moved).unwrap();
    let out = run(home
        .rscp()
        .arg(format!("-oCertificateFile={}", moved.display()))
        .arg(format!("-i{}", key.display()))
        .arg(&file)
        .arg(&target));
    assert_success(&out);
}

#[test]
fn a_host_certificate_from_a_known_authority() {
    let Some(sshd) = Sshd::start_prepared("HostCertificate @DIR@/host_key-cert.pub", |dir| {
        new_key(dir, "host_ca", "");
        sign(
            &dir.join("host_ca"),
            &dir.join("host_key.pub"),
            "127.0.0.1",
            true,
        );
    }) else {
        return;
    };
    let ca = fs::read_to_string(sshd.dir.path().join("host_ca.pub")).unwrap();
    let ca: String = ca.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    let (_work, file, into) = payload();
    let target = format!("fixture:{}", into.display());
    // Only the authority is known, not the host's key.
    let home = with_known_hosts(
        &sshd,
        &format!("@cert-authority [127.0.0.1]:* {ca}\n"),
        "\tStrictHostKeyChecking yes\n",
    );
    let out = run(home.rscp().arg(&file).arg(&target));
    assert_success(&out);
    assert_eq!(stderr(&out), "");

    // Another authority: the certificate proves nothing.
    let other = new_key(sshd.dir.path(), "other_ca", "");
    let other = fs::read_to_string(other.with_extension("pub")).unwrap();
    let other: String = other
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let home = with_known_hosts(
        &sshd,
        &format!("@cert-authority * {other}\n"),
        "\tStrictHostKeyChecking yes\n",
    );
    let out = run(home.rscp().arg(&file).arg(&target));
    assert_exit(&out, 1);
    assert!(
        stderr(&out).ends_with("rscp: Host key verification failed.\n"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn forward_agent_only_when_asked() {
    let Some(sshd) = Sshd::start() else { return };
    let agent = Agent::start();
    agent.add(&sshd.client_key());
    let home = Home::for_sshd(&sshd, "");
    let (work, file, into) = payload();
    // The remote shell runs what the target path holds (as with scp): here
    // it lists the keys the remote side can reach through the agent.
    let report = work.path().join("agent-seen");
    let target = |flag: &str| {
        let mut command = home.rscp();
        command.env("SSH_AUTH_SOCK", &agent.socket);
        if !flag.is_empty() {
            command.arg(flag);
        }
        command.arg(&file).arg(format!(
            "fixture:{}/$(ssh-add -l > {} 2>&1)",
            into.display(),
            report.display()
        ));
        command
    };
    let out = run(&mut target("-A"));
    assert_success(&out);
    let seen = fs::read_to_string(&report).unwrap();
    assert!(
        seen.contains("ED25519"),
        "forwarded agent not reachable: {seen}"
    );

    let out = run(&mut target(""));
    assert_success(&out);
    let seen = fs::read_to_string(&report).unwrap();
    assert!(
        !seen.contains("ED25519"),
        "agent forwarded without -A: {seen}"
    );
}

#[test]
fn a_failing_remote_command_fails_the_run() {
    let Some(sshd) = Sshd::start() else { return };
    let home = Home::for_sshd(&sshd, "");
    let (work, file, into) = payload();
    // The remote shell runs the path as written: the copy itself works, then
    // the remote command exits 3.
    let out = run(home
        .rscp()
        .arg(format!("fixture:{}; exit 3", file.display()))
        .arg(&into));
    assert_exit(&out, 1);
    assert_eq!(stderr(&out), "");
    assert!(fs::read(into.join("payload.bin")).unwrap() == fs::read(&file).unwrap());
    drop(work);
}

#[test]
fn connect_timeout_against_a_server_that_never_speaks() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let work = tempfile::tempdir().unwrap();
    write(work.path().join("f"), b"x");
    let started = Instant::now();
    let out = run(rscp()
        .args(["-F", "none", "-oConnectTimeout=1", "-oBatchMode=yes", "-P"])
        .arg(port.to_string())
        .arg(work.path().join("f"))
        .arg("127.0.0.1:/tmp/x"));
    assert_exit(&out, 1);
    assert_eq!(
        stderr(&out),
        "rscp: Connection timed out during banner exchange\n"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    drop(silent);
}

#[test]
fn connection_attempts_are_repeated() {
    let work = tempfile::tempdir().unwrap();
    write(work.path().join("f"), b"x");
    let out = run(rscp()
        .args(["-F", "none", "-v", "-oConnectionAttempts=3", "-P", "1"])
        .arg(work.path().join("f"))
        .arg("127.0.0.1:/tmp/x"));
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert_eq!(
        err.matches("debug1: Connecting to 127.0.0.1 [127.0.0.1] port 1.")
            .count(),
        3,
        "{err}"
    );
    assert!(
        err.ends_with("rscp: connect to host 127.0.0.1 port 1: Connection refused\n"),
        "{err}"
    );
}

#[test]
fn bind_address_sets_the_source() {
    let Some(sshd) = Sshd::start() else { return };
    let home = Home::for_sshd(&sshd, "");
    let (_work, file, into) = payload();
    let out = run(home
        .rscp()
        .arg("-oBindAddress=127.0.0.2")
        .arg(&file)
        .arg(format!("fixture:{}", into.display())));
    assert_success(&out);
    assert!(
        sshd.log().contains("from 127.0.0.2 port"),
        "sshd log:\n{}",
        sshd.log()
    );
}

#[test]
fn the_server_banner_is_shown_unless_quiet() {
    let Some(sshd) = Sshd::start_prepared("Banner @DIR@/banner", |dir| {
        fs::write(dir.join("banner"), "Authorized use only\x1b[2J\n").unwrap();
    }) else {
        return;
    };
    let home = Home::for_sshd(&sshd, "");
    let (_work, file, into) = payload();
    let out = run(home
        .rscp()
        .arg(&file)
        .arg(format!("fixture:{}", into.display())));
    assert_success(&out);
    assert_eq!(stderr(&out), "Authorized use only\\033[2J\n");
    let out = run(home
        .rscp()
        .arg("-q")
        .arg(&file)
        .arg(format!("fixture:{}", into.display())));
    assert_success(&out);
    assert_eq!(stderr(&out), "");
}

#[test]
fn a_missing_identity_file_is_warned_about() {
    let Some(sshd) = Sshd::start() else { return };
    let home = Home::for_sshd(&sshd, "");
    let (work, file, into) = payload();
    let missing = work.path().join("no-such-key");
    // As with ssh, once IdentityFile is given the default keys are not
    // added: the real key comes second.
    let out = run(home
        .rscp()
        .arg("-i")
        .arg(&missing)
        .arg("-i")
        .arg(home.ssh().join("id_ed25519"))
        .arg(&file)
        .arg(format!("fixture:{}", into.display())));
    assert_success(&out);
    assert_eq!(
        stderr(&out),
        format!(
            "rscp: Warning: Identity file {} not accessible: No such file or directory.\n",
            missing.display()
        )
    );
}

/// Runs rscp under a pseudo-terminal (`script`). For each `(question,
/// answer)`, waits until the question is on the screen, then types the
/// answer. Returns the exit status and the whole screen.
fn on_a_terminal(
    home: &Home,
    args: &[String],
    dialogue: &[(&str, &str)],
) -> (std::process::ExitStatus, String) {
    use std::io::{Read, Write};
    use std::sync::{Arc, Mutex};
    let mut line = shell_quote(&rscp_path().display().to_string());
    for arg in args {
        line.push(' ');
        line.push_str(&shell_quote(arg));
    }
    let mut child = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("HOME", home.dir.path())
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("SSH_ASKPASS")
        .env_remove("DISPLAY")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let screen = Arc::new(Mutex::new(String::new()));
    let mut stdout = child.stdout.take().unwrap();
    let collected = screen.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            collected
                .lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let mut stdin = child.stdin.take().unwrap();
    for (question, answer) in dialogue {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !screen.lock().unwrap().contains(question) {
            assert!(
                Instant::now() < deadline,
                "never asked {question:?}; screen:\n{}",
                screen.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // The terminal settles (echo off for a secret) as the question ends.
        std::thread::sleep(Duration::from_millis(100));
        stdin.write_all(answer.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }
    let status = child.wait().unwrap();
    drop(stdin);
    reader.join().unwrap();
    let text = screen.lock().unwrap().clone();
    (status, text)
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

#[test]
fn questions_on_the_terminal() {
    let Some(sshd) = Sshd::start() else { return };
    if !which("script") {
        panic!("script (util-linux) is needed for terminal tests");
    }
    let locked = new_key(sshd.dir.path(), "locked", "tty phrase");
    fs::copy(
        locked.with_extension("pub"),
        sshd.dir.path().join("authorized_keys"),
    )
    .unwrap();
    let home = with_known_hosts(
        &sshd,
        "",
        &format!(
            "\tStrictHostKeyChecking ask\n\tBatchMode no\n\tIdentityFile {}\n",
            locked.display()
        ),
    );
    let (_work, file, into) = payload();
    let args = vec![
        file.display().to_string(),
        format!("fixture:{}", into.display()),
    ];
    let passphrase_question = format!("Enter passphrase for key '{}': ", locked.display());
    let (status, screen) = on_a_terminal(
        &home,
        &args,
        &[
            (
                "Are you sure you want to continue connecting (yes/no/[fingerprint])? ",
                "yes\n",
            ),
            (&passphrase_question, "tty phrase\n"),
        ],
    );
    assert!(status.success(), "screen:\n{screen}");
    assert!(
        screen.contains("ED25519 key fingerprint is SHA256:"),
        "{screen}"
    );
    assert!(
        !screen.contains("tty phrase"),
        "the passphrase was echoed:\n{screen}"
    );
    assert!(into.join("payload.bin").exists());
    assert!(
        fs::read_to_string(home.ssh().join("known_hosts"))
            .unwrap()
            .contains(&sshd.host_key())
    );
}

/// The channel window follows the round trip: measured through a proxy
/// that adds 30 ms each way (the kernel sees only loopback), it is sized
/// for 1 GiB/s over that time, and a file comes through whole.
#[test]
fn the_channel_window_follows_the_round_trip_through_a_slow_proxy() {
    let Some(sshd) = Sshd::start() else {
        return;
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let proxy_port = listener.local_addr().unwrap().port();
    let sshd_port = sshd.port;
    std::thread::spawn(move || {
        runtime().block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let _ = delay_proxy::serve(listener, sshd_port, Duration::from_millis(30)).await;
        })
    });
    let home = with_known_hosts(
        &sshd,
        &format!(
            "{}\n[127.0.0.1]:{proxy_port} {}\n",
            sshd.known_hosts_line(),
            sshd.host_key()
        ),
        &format!("Host far\n\tHostName 127.0.0.1\n\tPort {proxy_port}\n"),
    );
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    let data = pattern(3 * 1024 * 1024 + 17, 5);
    write(&source, &data);
    let copy = dir.path().join("copy");

    let out = run(home
        .rscp()
        .arg("-v")
        .arg(format!("far:{}", source.display()))
        .arg(&copy));
    assert_success(&out);
    assert_eq!(fs::read(&copy).unwrap(), data);
    let log = stderr(&out);
    let line = log
        .lines()
        .find(|l| l.starts_with("debug1: round trip "))
        .unwrap_or_else(|| panic!("no round trip line in:\n{log}"));
    let pattern = regex::Regex::new(
        r"^debug1: round trip ([0-9.]+) ms \(version exchange\); channel window ([0-9]+) KiB$",
    )
    .unwrap();
    let found = pattern.captures(line).unwrap_or_else(|| panic!("{line}"));
    let rtt_ms: f64 = found[1].parse().unwrap();
    let window_kib: u64 = found[2].parse().unwrap();
    assert!(rtt_ms >= 60.0, "{line}");
    assert!((60 * 1024..=64 * 1024).contains(&window_kib), "{line}");
    assert!(
        log.contains("debug1: Remote version string SSH-2.0-OpenSSH_"),
        "{log}"
    );

    // Direct, too (how small loopback's window is depends on the load).
    let out = run(sshd.rscp().arg("-v").arg(sshd.remote(&source)).arg(&copy));
    assert_success(&out);
    assert!(
        stderr(&out).contains("; channel window "),
        "{}",
        stderr(&out)
    );
}

/// Host and user names from the command line reach `%h`, `%n` and `%r`,
/// which ProxyCommand and Match exec hand to a shell: names with shell
/// syntax are refused before any config is read, as ssh refuses them.
#[test]
fn shell_syntax_in_host_or_user_names_never_reaches_a_shell() {
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("config");
    fs::write(
        &config,
        "Match exec \"echo %h %n %r >/dev/null\"\n\
         \tBatchMode yes\n\
         Host *\n\
         \tProxyCommand sh -c 'echo %h %r; exit 1'\n",
    )
    .unwrap();
    let cases: [(&[&str], &str); 6] = [
        (
            &["x$(touch${IFS}PWNED):f"],
            "rscp: x$(touch${IFS}PWNED): hostname contains invalid characters\n",
        ),
        (
            &["h`touch PWNED`:f"],
            "rscp: h`touch PWNED`: hostname contains invalid characters\n",
        ),
        (
            &["u;touch${IFS}PWNED@h:f"],
            "rscp: u;touch${IFS}PWNED: remote username contains invalid characters\n",
        ),
        (
            &["scp://a%3Btouch%20x@h/f"],
            "rscp: scp://a%3Btouch%20x@h/f: invalid uri\n",
        ),
        (
            &["-J", "j;touch${IFS}PWNED", "h:f"],
            "rscp: j;touch${IFS}PWNED: hostname contains invalid characters\n",
        ),
        (
            &["-o", "User=$(touch${IFS}PWNED)", "h:f"],
            "rscp: $(touch${IFS}PWNED): remote username contains invalid characters\n",
        ),
    ];
    for (args, message) in cases {
        let out = run(rscp()
            .current_dir(work.path())
            .arg("-F")
            .arg(&config)
            .args(args)
            .arg(work.path().join("out")));
        assert_exit(&out, 1);
        assert_eq!(stderr(&out), message, "{args:?}");
        assert!(!work.path().join("PWNED").exists(), "{args:?}");
    }
}

/// Over a long link (10 ms each way through examples/delay_proxy), a tree
/// upload goes over several exec channels of the connection; the tree,
/// modes and -p times are what one channel (and scp -O) would make, into
/// a new name and into an existing directory, and a file that cannot be
/// sent is reported as before.
#[test]
fn tree_uploads_over_a_long_link_spread_over_channels() {
    let Some(sshd) = Sshd::start() else { return };
    let far = sshd.far(10);
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    for i in 0..30 {
        write(tree.join(format!("f{i}")), &pattern(3000 + i, i as u64));
        write(tree.join(format!("sub/g{i}")), &pattern(100 + i, 7));
    }
    for i in 0..5 {
        write(tree.join(format!("sub/deeper/h{i}")), b"h");
    }
    chmod(tree.join("sub"), 0o750);
    chmod(tree.join("sub/deeper"), 0o500);
    set_times(tree.join("sub/deeper"), 1_000_000_000, 1_000_000_000);
    set_times(tree.join("sub"), 1_100_000_000, 1_100_000_000);
    set_times(tree.join("f3"), 1_200_000_000, 1_200_000_000);
    for (args, times) in [("-r", false), ("-rp", true)] {
        let new_name = work.path().join(format!("new{args}"));
        let out = run(rscp()
            .args(["-v", args, "-F"])
            .arg(&far.config)
            .arg(&tree)
            .arg(format!("far:{}", new_name.display())));
        assert_success(&out);
        // (Into a new name, helpers start once the first channel has made
        // it; on a slow machine that one may be done first, or the helper
        // that asks may not answer in time: then there are none.)
        let used = channels_used(&stderr(&out));
        assert!(
            used.is_none_or(|n| (1..=7).contains(&n)),
            "{}",
            stderr(&out)
        );
        assert_same_tree(&tree, &new_name);
        assert_same_metadata(&tree, &new_name, times);

        let into = work.path().join(format!("into{args}"));
        fs::create_dir(&into).unwrap();
        let out = run(rscp()
            .args([args, "-F"])
            .arg(&far.config)
            .arg(&tree)
            .arg(format!("far:{}", into.display())));
        assert_success(&out);
        assert_eq!(stderr(&out), "");
        assert_same_tree(&tree, &into.join("tree"));
        assert_same_metadata(&tree, &into.join("tree"), times);
        assert_eq!(
            listing(&into)
                .iter()
                .filter(|p| p.components().count() == 1)
                .count(),
            1
        );
    }
    // Several operands, and one that cannot be sent: reported, exit 1,
    // the rest copied, as scp -O does.
    let fifo = work.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let several = work.path().join("several");
    fs::create_dir(&several).unwrap();
    let mut sources: Vec<std::path::PathBuf> =
        (0..20).map(|i| tree.join(format!("f{i}"))).collect();
    sources.insert(5, fifo.clone());
    let out = run(rscp()
        .arg("-F")
        .arg(&far.config)
        .args(&sources)
        .arg(format!("far:{}", several.display())));
    assert_exit(&out, 1);
    assert_eq!(
        stderr(&out),
        format!("rscp: {}: not a regular file\n", fifo.display())
    );
    for i in 0..20 {
        let name = format!("f{i}");
        assert_eq!(
            fs::read(several.join(&name)).unwrap(),
            fs::read(tree.join(&name)).unwrap()
        );
    }
    let theirs = run(std::process::Command::new("scp")
        .args(["-O", "-F"])
        .arg(&far.config)
        .args(&sources)
        .arg(format!("far:{}", several.display())));
    assert_exit(&theirs, 1);
}

/// A short link to a host whose scp is slow to start: the first channel's
/// go-ahead shows the wait per file, and the helpers follow it (one of
/// them first asking whether the target is a directory). Same tree and
/// modes as with one channel, into an existing directory and a new name.
#[test]
fn uploads_to_a_slow_starting_scp_spread_after_its_go_ahead() {
    let slow = |_: &std::path::Path| "#!/bin/sh\nsleep 0.05\nexec /usr/bin/scp \"$@\"\n".to_owned();
    let Some(sshd) = Sshd::start_with_remote_scp(slow) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    for i in 0..40 {
        write(tree.join(format!("f{i}")), &pattern(500 + i, i as u64));
    }
    write(tree.join("sub/g"), b"g");
    chmod(tree.join("sub"), 0o700);
    let into = work.path().join("into");
    fs::create_dir(&into).unwrap();
    // Into a new name the helpers start after the first channel has made
    // it; on loopback that one may be done first (then it alone is used).
    for (target, copy, fewest) in [
        (into.clone(), into.join("tree"), 2),
        (work.path().join("new"), work.path().join("new"), 1),
    ] {
        let out = run(sshd
            .rscp()
            .args(["-v", "-r"])
            .arg(&tree)
            .arg(sshd.remote(&target)));
        assert_success(&out);
        let used = channels_used(&stderr(&out));
        assert!(
            used.is_some_and(|n| (fewest..=7).contains(&n)),
            "{}",
            stderr(&out)
        );
        assert_same_tree(&tree, &copy);
        assert_same_metadata(&tree, &copy, false);
    }
}

/// The channels a spread upload says (under -v) it used.
fn channels_used(stderr: &str) -> Option<usize> {
    let line = stderr.lines().find(|l| l.starts_with("Upload over "))?;
    let count = line.strip_prefix("Upload over ")?;
    let count = match count.strip_suffix(" channels") {
        Some(many) => many,
        None => count.strip_suffix(" channel").filter(|one| *one == "1")?,
    };
    count.parse().ok()
}

/// A server that allows fewer sessions than rscp would open: the helpers
/// it refuses are not used, `-v` says how many channels were, and the
/// copy is the same (with one session, one channel does it all, quietly).
#[test]
fn spread_uploads_use_the_sessions_a_server_grants() {
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    for i in 0..30 {
        write(tree.join(format!("f{i}")), &pattern(700 + i, i as u64));
    }
    write(tree.join("sub/g"), b"g");
    for (sessions, spreads) in [(3, true), (1, false)] {
        let Some(sshd) = Sshd::start_with(&format!("MaxSessions {sessions}")) else {
            return;
        };
        let far = sshd.far(10);
        for (target, copy) in [
            (work.path().join(format!("into{sessions}")), None),
            (work.path().join(format!("new{sessions}")), Some(())),
        ] {
            if copy.is_none() {
                fs::create_dir(&target).unwrap();
            }
            let out = run(rscp()
                .args(["-v", "-r", "-F"])
                .arg(&far.config)
                .arg(&tree)
                .arg(format!("far:{}", target.display())));
            assert_success(&out);
            let text = stderr(&out);
            // (A helper still starting when the first channel is done is
            // not counted: into a new name, the helpers start only once the
            // first channel has made it, and it may be done first.)
            let fewest = if copy.is_none() { 2 } else { 1 };
            match channels_used(&text) {
                Some(used) => assert!(spreads && (fewest..=3).contains(&used), "{text}"),
                // (Or none at all, if the helper that asks about a new
                // name did not answer in time.)
                None => assert!(!spreads || copy.is_some(), "{text}"),
            }
            let landed = if copy.is_none() {
                target.join("tree")
            } else {
                target
            };
            assert_same_tree(&tree, &landed);
            assert_same_metadata(&tree, &landed, false);
        }
        // The refusals themselves are not the user's business.
        let quiet = work.path().join(format!("quiet{sessions}"));
        let out = run(rscp()
            .args(["-r", "-F"])
            .arg(&far.config)
            .arg(&tree)
            .arg(format!("far:{}", quiet.display())));
        assert_success(&out);
        assert_eq!(stderr(&out), "");
        assert_same_tree(&tree, &quiet);
    }
}

/// Helpers whose remote scp dies partway: the files they had not got
/// answered go over new channels, every file arrives whole, and the run
/// still says, once, that the connection was lost (exit 1).
#[test]
fn files_of_a_helper_that_dies_go_over_a_new_channel() {
    let Some(sshd) = Sshd::start_with_remote_scp(|dir| {
        // The first two helpers (`-d`; the first channel has none with
        // one operand) take 3000 bytes each and go (dd passes each byte
        // on as it comes, where head would hold them).
        format!(
            "#!/bin/bash\n\
             case \" $* \" in\n\
             *' -d '*) for n in 1 2; do if mkdir {died}$n 2>/dev/null; then\n\
                 dd bs=1 count=3000 status=none | /usr/bin/scp \"$@\"; exit 1; fi; done ;;\n\
             esac\n\
             exec /usr/bin/scp \"$@\"\n",
            died = dir.join("died").display()
        )
    }) else {
        return;
    };
    let far = sshd.far(10);
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    for i in 0..40 {
        write(tree.join(format!("f{i}")), &pattern(900 + i, i as u64));
    }
    let into = work.path().join("into");
    fs::create_dir(&into).unwrap();
    let out = run_within(
        rscp()
            .args(["-v", "-r", "-F"])
            .arg(&far.config)
            .arg(&tree)
            .arg(format!("far:{}", into.display())),
        Duration::from_secs(60),
    );
    assert_exit(&out, 1);
    let text = stderr(&out);
    assert!(
        text.contains("Helper channel lost: its files go over a new one"),
        "{text}"
    );
    assert_eq!(text.matches("rscp: lost connection\n").count(), 1, "{text}");
    assert!(!text.contains("not sent"), "{text}");
    assert_same_tree(&tree, &into.join("tree"));
}

/// A tree for `-rp` spread uploads: directories (each finished, with its
/// times, only once the helpers are done in it), files with their own
/// modes and times.
fn tree_with_times(tree: &Path) {
    for d in 0..4 {
        for i in 0..12 {
            let file = tree.join(format!("d{d}/f{i}"));
            write(&file, &pattern(700 + 97 * i, (d * 100 + i) as u64));
            chmod(&file, 0o600 + (i as u32 % 3) * 0o40);
            set_times(&file, 1_500_000_000 + (d * 1000 + i) as i64, 1_400_000_000);
        }
        set_times(
            tree.join(format!("d{d}")),
            1_600_000_000 + d as i64,
            1_400_000_000,
        );
    }
}

/// `rscp -v FLAGS tree far:into` through `far`, failed as a hang after
/// `limit`.
fn spread_upload(far: &Far, flags: &str, tree: &Path, into: &Path, limit: Duration) -> Output {
    run_within(
        rscp()
            .args(["-v", flags, "-F"])
            .arg(&far.config)
            .arg(tree)
            .arg(format!("far:{}", into.display())),
        limit,
    )
}

/// The `-v` line of a spread whose helpers were given up on.
const GIVEN_UP: &str = "Helper channel stopped answering: the first channel sends the rest";

/// A helper whose remote scp stops answering mid-file (its channel stays
/// open, the connection alive) is given up on after 30 s, and so are the
/// others: the first channel sends what they held and the rest, and the
/// copy is whole, with its times. scp would wait for good; the run here
/// does not fail, since nothing was lost.
#[test]
fn a_helper_that_stops_answering_mid_file_hands_the_rest_to_the_first_channel() {
    let Some(sshd) = Sshd::start_with_remote_scp(|dir| {
        // The first helper takes 3000 bytes and then neither reads nor
        // exits (for longer than rscp waits).
        format!(
            "#!/bin/bash\n\
             case \" $* \" in\n\
             *' -d '*) if mkdir {stuck} 2>/dev/null; then\n\
                 {{ dd bs=1 count=3000 status=none; sleep 50; }} | /usr/bin/scp \"$@\"; exit 1; fi ;;\n\
             esac\n\
             exec /usr/bin/scp \"$@\"\n",
            stuck = dir.join("stuck").display()
        )
    }) else {
        return;
    };
    let far = sshd.far(10);
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    tree_with_times(&tree);
    let into = work.path().join("into");
    fs::create_dir(&into).unwrap();
    let started = Instant::now();
    let out = spread_upload(&far, "-rp", &tree, &into, Duration::from_secs(120));
    assert_success(&out);
    let text = stderr(&out);
    assert!(text.contains(GIVEN_UP), "{text}");
    assert!(!text.contains("rscp: "), "{text}");
    assert!(started.elapsed() >= Duration::from_secs(30));
    assert_same_tree(&tree, &into.join("tree"));
    assert_same_metadata(&tree, &into.join("tree"), true);
}

/// A helper whose remote refuses a file and then stops answering: the
/// refusal is shown once and still fails the run (exit 1), though the
/// helper itself was cut; every other file arrives.
#[test]
fn a_refusal_on_a_helper_that_then_stops_answering_still_fails_the_run() {
    let Some(sshd) = Sshd::start_with_remote_scp(|dir| {
        // The first helper is a sink of its own: it takes directories and
        // times, refuses the first file, and never answers the second.
        let sink = dir.join("refusing-sink.py");
        fs::write(
            &sink,
            "import sys, time\n\
             out, inp = sys.stdout.buffer, sys.stdin.buffer\n\
             out.write(b'\\0'); out.flush()\n\
             refused = False\n\
             while True:\n\
             \x20   line = inp.readline()\n\
             \x20   if not line: sys.exit(1)\n\
             \x20   if line[:1] == b'C' and refused: time.sleep(60); sys.exit(1)\n\
             \x20   if line[:1] == b'C':\n\
             \x20       refused = True\n\
             \x20       out.write(b'\\x01scp: fake refusal\\n'); out.flush(); continue\n\
             \x20   out.write(b'\\0'); out.flush()\n",
        )
        .expect("sink script");
        format!(
            "#!/bin/bash\n\
             case \" $* \" in\n\
             *' -d '*) if mkdir {lock} 2>/dev/null; then exec python3 {sink}; fi ;;\n\
             esac\n\
             exec /usr/bin/scp \"$@\"\n",
            lock = dir.join("refused").display(),
            sink = sink.display()
        )
    }) else {
        return;
    };
    let far = sshd.far(10);
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    tree_with_times(&tree);
    let into = work.path().join("into");
    fs::create_dir(&into).unwrap();
    let out = spread_upload(&far, "-rp", &tree, &into, Duration::from_secs(120));
    assert_exit(&out, 1);
    let text = stderr(&out);
    assert_eq!(text.matches("scp: fake refusal\n").count(), 1, "{text}");
    assert!(text.contains(GIVEN_UP), "{text}");
    let landed = into.join("tree");
    let mut missing = Vec::new();
    for d in 0..4 {
        for i in 0..12 {
            let rel = format!("d{d}/f{i}");
            match fs::read(landed.join(&rel)) {
                Ok(got) => {
                    assert_eq!(got, fs::read(tree.join(&rel)).unwrap(), "{rel}");
                    assert_eq!(mtime(landed.join(&rel)), mtime(tree.join(&rel)), "{rel}");
                }
                Err(_) => missing.push(rel),
            }
        }
    }
    assert_eq!(missing.len(), 1, "{missing:?}\n{text}");
}

/// Helpers that never answer after their go-ahead: they are given up on
/// once, the first channel sends what they held, and the copy is whole,
/// with its times (or without, and not waited for at each directory).
#[test]
fn files_of_helpers_that_never_answer_go_over_the_first_channel() {
    let Some(sshd) = Sshd::start_with_remote_scp(|_| {
        // Every helper gives its go-ahead and then reads nothing.
        "#!/bin/bash\n\
         case \" $* \" in\n\
         *' -d '*) sleep 90 | /usr/bin/scp \"$@\"; exit 1 ;;\n\
         esac\n\
         exec /usr/bin/scp \"$@\"\n"
            .to_string()
    }) else {
        return;
    };
    let far = sshd.far(10);
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    tree_with_times(&tree);
    for (flags, into) in [("-rp", "into"), ("-r", "plain")] {
        let into = work.path().join(into);
        fs::create_dir(&into).unwrap();
        let out = spread_upload(&far, flags, &tree, &into, Duration::from_secs(150));
        assert_success(&out);
        let text = stderr(&out);
        assert!(text.contains(GIVEN_UP), "{text}");
        assert!(!text.contains("rscp: "), "{text}");
        assert_same_tree(&tree, &into.join("tree"));
        assert_same_metadata(&tree, &into.join("tree"), flags == "-rp");
    }
}

/// A server that runs one scp at a time (each waits for a lock): helpers
/// that never start are not waited for, and one channel does the copy, as
/// scp -O would. The remote shell's noise at the start of each session
/// is shown once, not once per channel.
#[test]
fn spread_uploads_do_not_wait_for_helpers_that_never_start() {
    let Some(sshd) = Sshd::start_with_remote_scp(|dir| {
        format!(
            "#!/bin/sh\necho 'login noise' >&2\nexec flock {lock} /usr/bin/scp \"$@\"\n",
            lock = dir.join("lock").display()
        )
    }) else {
        return;
    };
    let far = sshd.far(10);
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    for i in 0..20 {
        write(tree.join(format!("f{i}")), &pattern(300 + i, i as u64));
    }
    let into = work.path().join("into");
    fs::create_dir(&into).unwrap();
    for (config, args, landed) in [
        (
            &far.config,
            vec![tree.clone(), into.clone()],
            into.join("tree"),
        ),
        (
            &far.config,
            vec![tree.clone(), work.path().join("new")],
            work.path().join("new"),
        ),
        (
            &sshd.ssh_config(),
            vec![tree.clone(), work.path().join("near")],
            work.path().join("near"),
        ),
    ] {
        let (source, target) = (&args[0], &args[1]);
        let host = if config == &far.config {
            "far"
        } else {
            "127.0.0.1"
        };
        let out = run_within(
            rscp()
                .args(["-r", "-F"])
                .arg(config)
                .arg(source)
                .arg(format!("{host}:{}", target.display())),
            Duration::from_secs(60),
        );
        assert_success(&out);
        assert_eq!(stderr(&out), "login noise\n");
        assert_same_tree(&tree, &landed);
    }
}
