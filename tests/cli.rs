//! The command line as users and scripts meet it: usage, exit statuses,
//! what is handed to the ssh program, signals.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

const USAGE: &str = "\
usage: rscp [-346ABCOpqRrsTv] [-c cipher] [-D sftp_server_path] [-F ssh_config]
            [-i identity_file] [-J destination] [-l limit] [-o ssh_option]
            [-P port] [-S program] [-X sftp_option] source ... target
";

#[test]
fn bad_usage_prints_scps_usage_and_exits_1() {
    for args in [&["onlyone"][..], &[], &["-l", "0", "a", "b"]] {
        let out = run(rscp().args(args));
        assert_exit(&out, 1);
        assert_eq!(stderr(&out), USAGE, "{args:?}");
        assert_eq!(stdout(&out), "");
    }
    let out = run(rscp().args(["-Z", "a", "b"]));
    assert_exit(&out, 1);
    assert_eq!(stderr(&out), format!("rscp: unknown option -- Z\n{USAGE}"));
    let out = run(rscp().args(["-P"]));
    assert_exit(&out, 1);
    assert_eq!(
        stderr(&out),
        format!("rscp: option requires an argument -- P\n{USAGE}")
    );
}

#[test]
fn fatal_setup_errors_exit_255() {
    let out = run(rscp().args(["-P", "0", "a", "h:b"]));
    assert_exit(&out, 255);
    assert_eq!(stderr(&out), "rscp: bad port \"0\"\n");
    let out = run(rscp().args(["-Pnosuchservice", "a", "h:b"]));
    assert_exit(&out, 255);
    assert_eq!(stderr(&out), "rscp: bad port \"nosuchservice\"\n");
    let out = run(rscp().args(["-1", "a", "b"]));
    assert_exit(&out, 255);
    assert_eq!(
        stderr(&out),
        "rscp: SSH protocol v.1 is no longer supported\n"
    );
}

/// Bad `-X` values end the run before anything starts, as scp's do
/// (scp's own words, exit 255).
#[test]
fn bad_sftp_options_are_fatal() {
    for (option, message) in [
        ("buffer=0", "Invalid buffer size \"0\": Invalid argument"),
        (
            "nrequests=262145",
            "Invalid number of requests \"262145\": too large",
        ),
        ("window=1", "Invalid -X option"),
    ] {
        let out = run(rscp().args(["-X", option, "a", "h:b"]));
        assert_exit(&out, 255);
        assert_eq!(stderr(&out), format!("rscp: {message}\n"));
    }
}

#[test]
fn help_and_version() {
    let out = run(rscp().arg("--version"));
    assert_success(&out);
    assert_eq!(
        stdout(&out),
        format!("rscp {}\n", env!("CARGO_PKG_VERSION"))
    );
    let out = run(rscp().arg("--help"));
    assert_success(&out);
    for flag in [
        "-r",
        "-p",
        "-P <port>",
        "-S <program>",
        "-o <ssh_option>",
        "-T",
    ] {
        assert!(
            stdout(&out).contains(flag),
            "help lacks {flag}:\n{}",
            stdout(&out)
        );
    }
}

#[test]
fn bad_operands_fail_that_operand_only() {
    let work = tempfile::tempdir().unwrap();
    write(work.path().join("ok"), b"ok");
    let attempt = || {
        run(rscp()
            .arg("b c@host:x")
            .arg("scp://[::1]/x")
            .arg(work.path().join("ok"))
            .arg(work.path().join("dest")))
    };
    let out = attempt();
    assert_exit(&out, 1);
    assert_eq!(
        stderr(&out),
        format!(
            "rscp: {}: No such file or directory\n",
            work.path().join("dest").display()
        ),
        "several sources and a missing target directory: nothing is tried"
    );
    fs::create_dir(work.path().join("dest")).unwrap();
    let out = attempt();
    assert_exit(&out, 1);
    assert_eq!(
        stderr(&out),
        "rscp: b c: invalid user name\nrscp: scp://[::1]/x: invalid uri\n"
    );
    assert_eq!(fs::read(work.path().join("dest/ok")).unwrap(), b"ok");

    let out = run(rscp().arg(work.path().join("ok")).arg("scp://host:0/x"));
    assert_exit(&out, 1);
    assert_eq!(stderr(&out), "rscp: scp://host:0/x: invalid uri\n");
}

/// A `-S` program that records its arguments, one per line, then runs the
/// shell commands `then` (nothing: rscp sees a lost connection, which the
/// tests that only look at the arguments ignore).
fn recording_program(dir: &Path, then: &str) -> (PathBuf, PathBuf) {
    let log = dir.join("argv");
    let script = dir.join("record-ssh");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\" >> '{log}'; done\n{then}\n",
            log = log.display()
        ),
    )
    .unwrap();
    chmod(&script, 0o755);
    (script, log)
}

fn recorded(log: &Path) -> Vec<String> {
    fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_ssh_program_gets_scps_argument_layout() {
    let work = tempfile::tempdir().unwrap();
    let (program, log) = recording_program(work.path(), "");
    write(work.path().join("f"), b"x");
    let out = run(rscp()
        .args([
            "-v",
            "-q",
            "-C",
            "-4",
            "-A",
            "-B",
            "-i",
            "key",
            "-c",
            "aes128-ctr",
        ])
        .args([
            "-oUser=x", "-F", "cfg", "-J", "jump", "-P", "2222", "-rp", "-S",
        ])
        .arg(&program)
        .arg(work.path().join("f"))
        .arg(work.path().join("f"))
        .arg("alice@example.org:dir"));
    assert_eq!(stderr(&out).lines().last(), Some("rscp: lost connection"));
    let mut expected: Vec<String> = [
        "-x",
        "-oPermitLocalCommand=no",
        "-oClearAllForwardings=yes",
        "-oRemoteCommand=none",
        "-oRequestTTY=no",
        "-oControlMaster=no",
        "-v",
        "-q",
        "-C",
        "-4",
        "-A",
        "-oBatchmode=yes",
        "-i",
        "key",
        "-c",
        "aes128-ctr",
        "-o",
        "User=x",
        "-F",
        "cfg",
        "-J",
        "jump",
        "-oForwardAgent=no",
        "-p",
        "2222",
        "-l",
        "alice",
        "--",
        "example.org",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    expected.push("scp -v -r -p -d -t dir".into());
    assert_eq!(recorded(&log), expected);
}

#[test]
fn remote_commands_are_scps() {
    let work = tempfile::tempdir().unwrap();
    let (program, log) = recording_program(work.path(), "");
    write(work.path().join("f"), b"x");
    let cases: Vec<(Vec<String>, &str, &str)> = vec![
        // target, last argument expected, host expected
        (vec!["h:".into()], "scp -t .", "h"),
        (vec!["h:-odd".into()], "scp -t -- -odd", "h"),
        (vec!["[::1]:/x y".into()], "scp -t /x y", "::1"),
        (vec!["scp://u@h:2022/~/p%20q".into()], "scp -t ~/p q", "h"),
        (vec!["scp://h//abs".into()], "scp -t /abs", "h"),
    ];
    for (target, command, host) in cases {
        run(rscp()
            .arg("-S")
            .arg(&program)
            .arg(work.path().join("f"))
            .args(&target));
        let argv = recorded(&log);
        assert_eq!(argv.last().map(String::as_str), Some(command), "{target:?}");
        assert_eq!(argv[argv.len() - 2], host, "{target:?}");
        if target[0].contains("2022") {
            assert!(argv.windows(2).any(|w| w == ["-p", "2022"]), "{argv:?}");
            assert!(argv.windows(2).any(|w| w == ["-l", "u"]), "{argv:?}");
        }
    }
}

#[test]
fn download_commands_are_scps() {
    let work = tempfile::tempdir().unwrap();
    // As a source with nothing to send: takes the go-ahead and ends.
    let (script, log) = recording_program(work.path(), "head -c1 >/dev/null");
    let out = run(rscp()
        .arg("-S")
        .arg(&script)
        .arg("-r")
        .arg("h:-x")
        .arg("h:'a b'")
        .arg(work.path()));
    assert_success(&out);
    let lines = recorded(&log);
    let commands: Vec<&String> = lines.iter().filter(|l| l.starts_with("scp ")).collect();
    assert_eq!(commands, ["scp -r -d -f -- -x", "scp -r -d -f 'a b'"]);
}

#[test]
fn a_missing_ssh_program_is_reported() {
    let work = tempfile::tempdir().unwrap();
    write(work.path().join("f"), b"x");
    let out = run(rscp()
        .args(["-S", "/nonexistent/ssh"])
        .arg(work.path().join("f"))
        .arg("h:x"));
    assert_exit(&out, 1);
    assert_eq!(
        stderr(&out),
        "rscp: /nonexistent/ssh: No such file or directory\n"
    );
}

/// A `-S` program that never answers: it records its pid and sleeps.
fn stalled_program(dir: &Path) -> (PathBuf, PathBuf) {
    let pidfile = dir.join("pid");
    let script = dir.join("stalled-ssh");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\necho $$ > '{}'\nexec sleep 60\n",
            pidfile.display()
        ),
    )
    .unwrap();
    chmod(&script, 0o755);
    (script, pidfile)
}

fn wait_for_file(path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(text) = fs::read_to_string(path)
            && text.ends_with('\n')
        {
            return text.trim().to_owned();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{} never appeared", path.display());
}

fn alive(pid: i32) -> bool {
    // A zombie still has a /proc entry; count it as gone only when reaped.
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn signals_end_the_run_and_the_ssh_program() {
    for signal in [
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGHUP,
    ] {
        let work = tempfile::tempdir().unwrap();
        let (program, pidfile) = stalled_program(work.path());
        write(work.path().join("f"), b"x");
        let mut child = rscp()
            .arg("-S")
            .arg(&program)
            .arg(work.path().join("f"))
            .arg("h:x")
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let ssh_pid: i32 = wait_for_file(&pidfile).parse().unwrap();
        assert!(alive(ssh_pid));
        let sent = Instant::now();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
        let status = child.wait().unwrap();
        // Not a speed: a run that ignored the signal would wait for the
        // stalled program for good.
        assert!(
            sent.elapsed() < Duration::from_secs(5),
            "{signal}: took {:?}",
            sent.elapsed()
        );
        assert_eq!(status.code(), Some(1), "{signal}");
        assert!(!alive(ssh_pid), "{signal}: the ssh program outlived rscp");
    }
}

#[test]
fn a_closed_stdout_or_stderr_does_not_panic() {
    let work = tempfile::tempdir().unwrap();
    let out = rscp()
        .arg("--help")
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            drop(child.stdout.take());
            child.wait_with_output()
        })
        .unwrap();
    assert!(
        out.status.code().is_some(),
        "killed by a signal: {:?}",
        out.status
    );
    assert!(!stderr(&out).contains("panicked"));

    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{}' missing '{}' 2>&-",
            rscp_path().display(),
            work.path().join("x").display()
        ))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}
