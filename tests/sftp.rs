//! SFTP mode against the real servers: OpenSSH's sftp-server run directly
//! (`-D`) and through sshd (`-s`), side by side with OpenSSH's `scp -s` on
//! the same cases.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;

const SFTP_SERVER: &str = "/usr/lib/openssh/sftp-server";

/// OpenSSH's sftp-server, or `None` (outside CI) when it is not installed.
fn sftp_server() -> Option<&'static str> {
    if Path::new(SFTP_SERVER).exists() && which("scp") {
        return Some(SFTP_SERVER);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but OpenSSH's sftp-server or scp is not installed");
    }
    skip("OpenSSH sftp-server not installed");
    None
}

fn rscp_direct(server: &str) -> Command {
    let mut command = rscp();
    command.arg("-D").arg(server);
    command
}

fn scp_direct(server: &str) -> Command {
    let mut command = Command::new("scp");
    command.arg("-s").arg("-D").arg(server);
    command
}

/// `-D` ignores the host: any name does.
fn at(path: &Path) -> String {
    format!("x:{}", path.display())
}

#[test]
fn single_files_both_ways_through_a_local_sftp_server() {
    let Some(server) = sftp_server() else { return };
    let work = tempfile::tempdir().unwrap();
    let data = pattern(3_000_017, 3);
    write(work.path().join("one.bin"), &data);
    chmod(work.path().join("one.bin"), 0o640);
    fs::create_dir(work.path().join("into")).unwrap();

    // Into a directory, then as a new name.
    let up = run(rscp_direct(server)
        .arg(work.path().join("one.bin"))
        .arg(at(&work.path().join("into"))));
    assert_success(&up);
    assert_eq!(stderr(&up), "");
    assert!(fs::read(work.path().join("into/one.bin")).unwrap() == data);
    let named = run(rscp_direct(server)
        .arg(work.path().join("one.bin"))
        .arg(at(&work.path().join("named.bin"))));
    assert_success(&named);
    assert!(fs::read(work.path().join("named.bin")).unwrap() == data);

    let down = run(rscp_direct(server)
        .arg(at(&work.path().join("into/one.bin")))
        .arg(work.path().join("back.bin")));
    assert_success(&down);
    assert_eq!(stderr(&down), "");
    assert!(fs::read(work.path().join("back.bin")).unwrap() == data);
    // A new file gets the source's mode under the umask, as in legacy mode.
    assert_eq!(mode(work.path().join("back.bin")), 0o640 & !current_umask());
}

/// An upload over a longer file cuts it to the new size (written in
/// place, the size set at the end), in both directions.
#[test]
fn a_shorter_file_replaces_a_longer_one() {
    let Some(server) = sftp_server() else { return };
    let work = tempfile::tempdir().unwrap();
    write(work.path().join("short"), b"new");
    write(work.path().join("long"), &pattern(100_000, 1));
    let up = run(rscp_direct(server)
        .arg(work.path().join("short"))
        .arg(at(&work.path().join("long"))));
    assert_success(&up);
    assert_eq!(fs::read(work.path().join("long")).unwrap(), b"new");

    write(work.path().join("long2"), &pattern(100_000, 2));
    let down = run(rscp_direct(server)
        .arg(at(&work.path().join("short")))
        .arg(work.path().join("long2")));
    assert_success(&down);
    assert_eq!(fs::read(work.path().join("long2")).unwrap(), b"new");
}

#[test]
fn trees_with_p_keep_modes_and_times_both_ways() {
    let Some(server) = sftp_server() else { return };
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    sample_tree(&tree);
    set_times(tree.join("a.txt"), 1_000_000_000, 1_000_000_100);
    set_times(tree.join("sub"), 1_100_000_000, 1_100_000_000);
    chmod(tree.join("sub"), 0o750);

    let up = run(rscp_direct(server)
        .arg("-rp")
        .arg(&tree)
        .arg(at(&work.path().join("up"))));
    assert_success(&up);
    assert_eq!(stderr(&up), "");
    assert_same_tree(&tree, &work.path().join("up"));
    assert_same_metadata(&tree, &work.path().join("up"), true);

    fs::create_dir(work.path().join("down")).unwrap();
    let down = run(rscp_direct(server)
        .arg("-rp")
        .arg(at(&work.path().join("up")))
        .arg(work.path().join("down")));
    assert_success(&down);
    assert_eq!(stderr(&down), "");
    assert_same_tree(&tree, &work.path().join("down/up"));
    assert_same_metadata(&tree, &work.path().join("down/up"), true);
}

/// Globs, braces, quotes and `~` mean what the remote shell makes of
/// them in legacy mode; what needs a shell is refused.
#[test]
fn remote_paths_read_as_the_remote_shell_reads_them() {
    let Some(server) = sftp_server() else { return };
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    write(src.join("a.txt"), b"a");
    write(src.join("b.txt"), b"b");
    write(src.join("c.log"), b"c");
    write(src.join(".hidden.txt"), b"h");
    write(src.join("with space"), b"s");
    let out = work.path().join("out");
    fs::create_dir(&out).unwrap();

    let globbed = run(rscp_direct(server)
        .arg(format!("x:{}/*.txt", src.display()))
        .arg(format!("x:{}/'with space'", src.display()))
        .arg(format!("x:{}/{{c.log,nothing}}", src.display()))
        .arg(&out));
    assert_exit(&globbed, 1);
    assert_eq!(
        stderr(&globbed),
        format!(
            "rscp: {}/nothing: No such file or directory\n",
            src.display()
        )
    );
    let mut names: Vec<_> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["a.txt", "b.txt", "c.log", "with space"]);

    let shell = run(rscp_direct(server).arg("x:$HOME/a.txt").arg(&out));
    assert_exit(&shell, 1);
    assert_eq!(
        stderr(&shell),
        "rscp: $HOME/a.txt: needs a remote shell: use -O\n"
    );
}

/// Several sources need an existing target directory, as in legacy mode
/// (OpenSSH 9.2's SFTP mode would create it).
#[test]
fn several_sources_into_a_missing_directory_fail_as_in_legacy_mode() {
    let Some(server) = sftp_server() else { return };
    let work = tempfile::tempdir().unwrap();
    write(work.path().join("a"), b"a");
    write(work.path().join("b"), b"b");
    let missing = work.path().join("missing");
    let out = run(rscp_direct(server)
        .arg(work.path().join("a"))
        .arg(work.path().join("b"))
        .arg(at(&missing)));
    assert_exit(&out, 1);
    assert_eq!(
        stderr(&out),
        format!("rscp: {}: No such file or directory\n", missing.display())
    );
    assert!(!missing.exists());
}

/// Side by side with `scp -s -D`: the same copies, and the same exit
/// status for a missing remote source.
#[test]
fn side_by_side_with_openssh_scp_in_sftp_mode() {
    let Some(server) = sftp_server() else { return };
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    sample_tree(&tree);
    for (name, command) in [
        ("ours", rscp_direct(server)),
        ("theirs", scp_direct(server)),
    ] {
        let mut command = command;
        let target = work.path().join(name);
        let out = run(command.arg("-r").arg(&tree).arg(at(&target)));
        assert_success(&out);
        assert_same_tree(&tree, &target);
    }
    for command in [rscp_direct(server), scp_direct(server)] {
        let mut command = command;
        let out = run(command
            .arg(at(&work.path().join("nope")))
            .arg(work.path().join("got")));
        assert_exit(&out, 1);
        assert!(stderr(&out).contains("No such file"), "{}", stderr(&out));
        assert!(!work.path().join("got").exists());
    }
}

#[test]
fn sftp_options_change_the_requests_not_the_copy() {
    let Some(server) = sftp_server() else { return };
    let work = tempfile::tempdir().unwrap();
    let data = pattern(200_001, 9);
    write(work.path().join("f"), &data);
    let out = run(rscp_direct(server)
        .args(["-X", "buffer=1k", "-X", "nrequests=3", "-v"])
        .arg(work.path().join("f"))
        .arg(at(&work.path().join("g"))));
    assert_success(&out);
    assert!(fs::read(work.path().join("g")).unwrap() == data);
    assert!(
        stderr(&out)
            .contains("SFTP session: 1024 bytes per read, 1024 per write, 3 requests in flight"),
        "{}",
        stderr(&out)
    );
}

/// `-s` through sshd's sftp subsystem (internal-sftp in the fixture).
#[test]
fn through_sshd_with_dash_s() {
    let Some(sshd) = Sshd::start() else { return };
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    sample_tree(&tree);
    let up = run(sshd
        .rscp()
        .arg("-s")
        .arg("-rp")
        .arg(&tree)
        .arg(sshd.remote(work.path().join("up"))));
    assert_success(&up);
    assert_eq!(stderr(&up), "");
    assert_same_tree(&tree, &work.path().join("up"));
    assert_same_metadata(&tree, &work.path().join("up"), true);

    let down = run(sshd
        .rscp()
        .arg("-s")
        .arg("-r")
        .arg(sshd.remote(work.path().join("up")))
        .arg(work.path().join("down")));
    assert_success(&down);
    assert_same_tree(&tree, &work.path().join("down"));

    // And through OpenSSH's ssh (-S), which gets `-s -- host sftp`.
    let via_ssh = run(sshd
        .rscp_through_ssh()
        .arg("-s")
        .arg(sshd.remote(work.path().join("up/a.txt")))
        .arg(work.path().join("via-ssh.txt")));
    assert_success(&via_ssh);
    assert_eq!(
        fs::read(work.path().join("via-ssh.txt")).unwrap(),
        b"alpha\n"
    );
}

/// In the default mode, a host that cannot run scp at all is reached over
/// SFTP, quietly (and said so under -v): one without scp on its PATH, and
/// an account that allows only SFTP. OpenSSH's `scp -O` fails on both.
#[test]
fn hosts_that_cannot_run_scp_are_reached_over_sftp() {
    for (extra, why) in [
        (
            "SetEnv PATH=/nonexistent",
            "it has no scp (exit status 127)",
        ),
        ("ForceCommand internal-sftp", "the server allows only SFTP"),
    ] {
        let Some(sshd) = Sshd::start_with(extra) else {
            return;
        };
        let work = tempfile::tempdir().unwrap();
        let tree = work.path().join("tree");
        sample_tree(&tree);

        let up = run(sshd
            .rscp()
            .arg("-r")
            .arg(&tree)
            .arg(sshd.remote(work.path().join("up"))));
        assert_success(&up);
        assert_eq!(stderr(&up), "", "{extra}");
        assert_same_tree(&tree, &work.path().join("up"));

        let down = run(sshd
            .rscp()
            .arg("-v")
            .arg(sshd.remote(work.path().join("up/a.txt")))
            .arg(sshd.remote(work.path().join("up/sub/b.txt")))
            .arg(work.path()));
        assert_success(&down);
        let said = stderr(&down);
        assert_eq!(fs::read(work.path().join("a.txt")).unwrap(), b"alpha\n");
        assert_eq!(fs::read(work.path().join("b.txt")).unwrap(), b"bravo\n");
        // Found once; the second source goes straight to SFTP.
        let found = format!("127.0.0.1 cannot run scp ({why}): using SFTP");
        assert_eq!(said.matches(&found).count(), 1, "{said}");
        assert_eq!(said.matches("command scp ").count(), 1, "{said}");

        // -3 too: both ends go over SFTP.
        let relayed = run(sshd
            .rscp()
            .arg("-3")
            .arg(sshd.remote(work.path().join("up/a.txt")))
            .arg(sshd.remote(work.path().join("relayed.txt"))));
        assert_success(&relayed);
        assert_eq!(stderr(&relayed), "", "{extra}");
        assert_eq!(
            fs::read(work.path().join("relayed.txt")).unwrap(),
            b"alpha\n"
        );

        let theirs = run(sshd
            .openssh_scp()
            .arg(tree.join("a.txt"))
            .arg(sshd.remote(work.path().join("theirs.txt"))));
        assert_exit(&theirs, 1);
        assert!(!work.path().join("theirs.txt").exists());
    }
}

/// `-p` in SFTP mode carries no setuid or setgid, and the sticky bit only
/// on directories, as OpenSSH's SFTP mode: a server cannot plant a setuid
/// program, nor can one be planted on it.
#[test]
fn p_carries_no_setuid_bits_in_sftp_mode() {
    let Some(server) = sftp_server() else { return };
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("suid");
    write(tree.join("f"), b"#!/bin/sh\n");
    chmod(tree.join("f"), 0o6755);
    fs::create_dir(tree.join("d")).unwrap();
    chmod(tree.join("d"), 0o3777);
    for (name, from, to) in [
        (
            "down",
            at(&tree),
            work.path().join("down").display().to_string(),
        ),
        (
            "up",
            tree.display().to_string(),
            at(&work.path().join("up")),
        ),
    ] {
        let out = run(rscp_direct(server).arg("-rp").arg(&from).arg(&to));
        assert_success(&out);
        let copy = work.path().join(name);
        assert_eq!(mode(copy.join("f")), 0o755, "{name}");
        assert_eq!(mode(copy.join("d")), 0o1777, "{name}");
    }
}

/// A fake ssh for `-S` whose far side has no scp: a command gets "not
/// found" and exit status 127 at once; the sftp subsystem is OpenSSH's
/// sftp-server. Each start is logged.
fn ssh_without_scp(dir: &Path, server: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let log = dir.join("starts.log");
    let script = dir.join("fake-ssh");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             for last; do :; done\n\
             echo \"$last\" >> '{log}'\n\
             if [ \"$last\" = sftp ]; then exec {server}; fi\n\
             echo 'sh: 1: scp: not found' >&2\n\
             exit 127\n",
            log = log.display()
        ),
    )
    .unwrap();
    chmod(&script, 0o755);
    (script, log)
}

/// The remote side may end before rscp's go-ahead reaches it: the
/// fallback must not depend on that race.
#[test]
fn the_fallback_does_not_depend_on_timing() {
    let Some(server) = sftp_server() else { return };
    let work = tempfile::tempdir().unwrap();
    let (ssh, log) = ssh_without_scp(work.path(), server);
    write(work.path().join("src"), b"payload");
    for round in 0..10 {
        let got = work.path().join(format!("got{round}"));
        let down = run(rscp()
            .arg("-S")
            .arg(&ssh)
            .arg(format!("h:{}", work.path().join("src").display()))
            .arg(&got));
        assert_success(&down);
        assert_eq!(fs::read(&got).unwrap(), b"payload");
        let up = run(rscp()
            .arg("-S")
            .arg(&ssh)
            .arg(work.path().join("src"))
            .arg(format!(
                "h:{}",
                work.path().join(format!("up{round}")).display()
            )));
        assert_success(&up);
        assert_eq!(
            fs::read(work.path().join(format!("up{round}"))).unwrap(),
            b"payload"
        );
    }
    let starts = fs::read_to_string(&log).unwrap();
    assert_eq!(starts.lines().filter(|l| *l == "sftp").count(), 20);
}

/// Output that only starts like sshd's SFTP-only answer is scp's: no
/// fallback, whatever the reads make of it.
#[test]
fn only_the_whole_sftp_only_answer_means_sftp_only() {
    let Some(server) = sftp_server() else { return };
    let work = tempfile::tempdir().unwrap();
    let log = work.path().join("starts.log");
    let script = work.path().join("fake-ssh");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             for last; do :; done\n\
             echo \"$last\" >> '{log}'\n\
             if [ \"$last\" = sftp ]; then exec {server}; fi\n\
             printf 'This service allows sftp connections only.\\n'\n\
             sleep 0.2\n\
             printf 'more\\n'\n\
             exit 0\n",
            log = log.display()
        ),
    )
    .unwrap();
    chmod(&script, 0o755);
    let out = run(rscp()
        .arg("-S")
        .arg(&script)
        .arg("h:/x")
        .arg(work.path().join("got")));
    assert_exit(&out, 1);
    let starts = fs::read_to_string(&log).unwrap();
    assert!(!starts.lines().any(|l| l == "sftp"), "{starts}");
}

/// `-3` in SFTP mode: READs from the origin passed on as WRITEs to the
/// destination, -p kept, side by side with `scp -s -3`.
#[test]
fn through_this_host_over_sftp() {
    let Some(sshd) = Sshd::start() else { return };
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    sample_tree(&tree);
    set_times(tree.join("a.txt"), 1_200_000_000, 1_200_000_000);
    let ours = run(sshd
        .rscp()
        .args(["-s", "-3", "-rp"])
        .arg(sshd.remote(&tree))
        .arg(sshd.remote(work.path().join("ours"))));
    assert_success(&ours);
    assert_eq!(stderr(&ours), "");
    assert_same_tree(&tree, &work.path().join("ours"));
    assert_same_metadata(&tree, &work.path().join("ours"), true);
    let theirs = run(Command::new("scp")
        .args(["-s", "-3", "-rp", "-F"])
        .arg(sshd.ssh_config())
        .arg(sshd.remote(&tree))
        .arg(sshd.remote(work.path().join("theirs"))));
    assert_success(&theirs);
    assert_same_tree(&work.path().join("theirs"), &work.path().join("ours"));

    // A missing source: its own error, exit 1, nothing created.
    let missing = run(sshd
        .rscp()
        .args(["-s", "-3"])
        .arg(sshd.remote(work.path().join("nope")))
        .arg(sshd.remote(work.path().join("got"))));
    assert_exit(&missing, 1);
    assert_eq!(
        stderr(&missing),
        format!(
            "rscp: {}: No such file or directory\n",
            work.path().join("nope").display()
        )
    );
    assert!(!work.path().join("got").exists());
}

/// `dir/` that is not there names a directory, as scp's sink reads it: a
/// file cannot take the name, a directory (with -r) can.
#[test]
fn a_target_with_a_trailing_slash_names_a_directory() {
    let Some(server) = sftp_server() else { return };
    let work = tempfile::tempdir().unwrap();
    write(work.path().join("a"), b"a");
    write(work.path().join("d/b"), b"b");
    let missing = work.path().join("missing");
    let file = run(rscp_direct(server)
        .arg(work.path().join("a"))
        .arg(format!("x:{}/", missing.display())));
    assert_exit(&file, 1);
    assert_eq!(
        stderr(&file),
        format!("rscp: {}/: Is a directory\n", missing.display())
    );
    assert!(!missing.exists());
    let relayed = run(rscp_direct(server)
        .arg("-3")
        .arg(at(&work.path().join("a")))
        .arg(format!("y:{}/", missing.display())));
    assert_exit(&relayed, 1);
    assert!(!missing.exists());
    let tree = run(rscp_direct(server)
        .arg("-r")
        .arg(work.path().join("d"))
        .arg(format!("x:{}/", missing.display())));
    assert_success(&tree);
    assert_eq!(fs::read(missing.join("b")).unwrap(), b"b");
}

/// An ssh_config that names two fixture sshds `one` and `two`.
fn two_hosts(dir: &Path, one: &Sshd, two: &Sshd) -> std::path::PathBuf {
    let known = dir.join("known_hosts");
    fs::write(
        &known,
        format!("{}\n{}\n", one.known_hosts_line(), two.known_hosts_line()),
    )
    .unwrap();
    let mut config = String::new();
    for (name, sshd) in [("one", one), ("two", two)] {
        config += &format!(
            "Host {name}\n\tHostName 127.0.0.1\n\tPort {}\n\tIdentityFile {}\n",
            sshd.port,
            sshd.client_key().display()
        );
    }
    config += &format!(
        "Host *\n\tIdentitiesOnly yes\n\tUserKnownHostsFile {}\n\tGlobalKnownHostsFile /dev/null\n\tStrictHostKeyChecking yes\n\tBatchMode yes\n\tLogLevel ERROR\n",
        known.display()
    );
    let path = dir.join("ssh_config");
    fs::write(&path, config).unwrap();
    path
}

/// `-3` between a host that has scp but no SFTP server and one that
/// allows only SFTP: each end speaks what it can, and the copy is the
/// same whichever way it goes. OpenSSH's scp cannot do it in either mode.
#[test]
fn through_this_host_between_an_scp_only_and_an_sftp_only_host() {
    // Commands run; the sftp subsystem does not.
    let scp_only = Sshd::start_prepared("ForceCommand @DIR@/scp-only", |dir| {
        let script = dir.join("scp-only");
        write(
            &script,
            b"#!/bin/sh\ncase \"$SSH_ORIGINAL_COMMAND\" in scp\\ *) exec /bin/sh -c \"$SSH_ORIGINAL_COMMAND\";; esac\nexit 1\n",
        );
        chmod(&script, 0o755);
    });
    let Some(scp_only) = scp_only else { return };
    let Some(sftp_only) = Sshd::start_with("ForceCommand internal-sftp") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let config = two_hosts(work.path(), &scp_only, &sftp_only);
    let tree = work.path().join("tree");
    sample_tree(&tree);
    set_times(tree.join("a.txt"), 1_200_000_000, 1_200_000_100);
    set_times(tree.join("sub"), 1_100_000_000, 1_100_000_000);
    let big = pattern(3 * 1024 * 1024 + 17, 11);
    write(tree.join("big"), &big);
    let rscp_with = || {
        let mut command = rscp();
        command.arg("-F").arg(&config);
        command
    };
    for (from, to) in [("one", "two"), ("two", "one")] {
        let copy = work.path().join(format!("{from}-{to}"));
        let out = run(rscp_with()
            .args(["-3", "-rp", "-v"])
            .arg(format!("{from}:{}", tree.display()))
            .arg(format!("{to}:{}", copy.display())));
        assert_success(&out);
        let said = stderr(&out);
        assert_eq!(
            said.matches("two cannot run scp (the server allows only SFTP): using SFTP")
                .count(),
            1,
            "{from} -> {to}: {said}"
        );
        assert_same_tree(&tree, &copy);
        assert_same_metadata(&tree, &copy, true);
        assert_eq!(fs::read(copy.join("big")).unwrap(), big);

        // A file onto an existing one, a missing source, and a file into
        // a directory that is not there: the messages and status of
        // legacy mode.
        let file = work.path().join(format!("{from}-{to}.txt"));
        write(&file, &pattern(100_000, 3));
        let out = run(rscp_with()
            .arg("-3")
            .arg(format!("{from}:{}", tree.join("a.txt").display()))
            .arg(format!("{to}:{}", file.display())));
        assert_success(&out);
        assert_eq!(stderr(&out), "");
        assert_eq!(fs::read(&file).unwrap(), b"alpha\n");

        let out = run(rscp_with()
            .arg("-3")
            .arg(format!("{from}:{}", work.path().join("nope").display()))
            .arg(format!("{to}:{}", work.path().join("got").display())));
        assert_exit(&out, 1);
        assert!(
            stderr(&out).contains(&format!(
                "{}: No such file or directory\n",
                work.path().join("nope").display()
            )),
            "{}",
            stderr(&out)
        );
        assert!(!work.path().join("got").exists());

        let out = run(rscp_with()
            .arg("-3")
            .arg(format!("{from}:{}", tree.join("a.txt").display()))
            .arg(format!(
                "{to}:{}",
                work.path().join("no/such/dir").display()
            )));
        assert_exit(&out, 1);
        assert!(
            stderr(&out).contains("No such file or directory"),
            "{}",
            stderr(&out)
        );
    }

    // OpenSSH: its SFTP mode needs SFTP at both ends, its legacy mode scp.
    for mode in ["-s", "-O"] {
        let theirs = run(Command::new("scp")
            .args([mode, "-3", "-F"])
            .arg(&config)
            .arg(format!("one:{}", tree.join("a.txt").display()))
            .arg(format!("two:{}", work.path().join("theirs").display())));
        assert_ne!(theirs.status.code(), Some(0), "scp {mode}");
        assert!(!work.path().join("theirs").exists());
    }
}

/// A big upload striped over several sessions (each a real sftp-server):
/// every stripe writes a range of its own into the file the first session
/// made, none creates or cuts it, and the size is set once at the end (a
/// longer old file is cut to the new size).
#[test]
fn a_big_upload_striped_over_several_sessions_is_whole() {
    use rscp::sftp::{STRIPE_MIN, Sftp, SftpOptions};
    let Some(server) = sftp_server() else { return };
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("big");
    let data = pattern(STRIPE_MIN as usize * 2 + 12_345, 5);
    write(&source, &data);
    let target = work.path().join("dst");
    write(target.join("big"), &pattern(STRIPE_MIN as usize * 3, 9));
    let options = SftpOptions {
        recursive: false,
        preserve: false,
        limit: None,
        buffer: None,
        requests: 64,
        umask: 0o022,
    };
    let logs = runtime().block_on(async {
        let mut children = Vec::new();
        let mut sessions = Vec::new();
        for _ in 0..4 {
            let mut child = tokio::process::Command::new(server)
                .args(["-e", "-l", "INFO"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            let (reader, writer) = (child.stdout.take().unwrap(), child.stdin.take().unwrap());
            sessions.push(
                Sftp::start(reader, writer, options, &rscp::events::NoEvents)
                    .await
                    .unwrap(),
            );
            children.push(child);
        }
        let mut sftp = sessions.remove(0);
        sftp.add_stripes(sessions);
        let upload_target = sftp
            .upload_target(target.to_str().unwrap().as_bytes(), false)
            .await
            .unwrap()
            .unwrap();
        sftp.upload(&source, &upload_target).await.unwrap();
        assert_eq!(sftp.close().await.unwrap().errors, 0);
        let mut logs = Vec::new();
        for child in children {
            let out = child.wait_with_output().await.unwrap();
            logs.push(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        logs
    });
    assert_eq!(fs::read(target.join("big")).unwrap(), data);
    // The first session opens it to write and sets its size; the others
    // only open it, and each writes its part.
    assert!(logs[0].contains("flags WRITE,CREATE"), "{}", logs[0]);
    for log in &logs[1..] {
        assert!(log.contains("flags WRITE mode"), "{log}");
        assert!(
            !log.contains("TRUNCATE") && !log.contains("CREATE"),
            "{log}"
        );
        assert!(!log.contains("written 0 "), "{log}");
    }
    let written: u64 = logs
        .iter()
        .flat_map(|log| log.lines())
        .filter_map(|line| line.split("written ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(written, data.len() as u64, "{logs:?}");
}

/// Over a long link (10 ms each way through examples/delay_proxy), a big
/// upload goes over several SFTP sessions of one connection, since one
/// channel's window would cap it, and arrives whole; a small one does not.
#[test]
fn a_big_upload_over_a_long_link_is_striped_and_whole() {
    let Some(sshd) = Sshd::start() else { return };
    let far = sshd.far(10);
    let config = far.config.clone();

    let work = tempfile::tempdir().unwrap();
    let big = pattern(40 * 1024 * 1024 + 3, 21);
    write(work.path().join("big"), &big);
    write(work.path().join("small"), b"small");
    fs::create_dir(work.path().join("got")).unwrap();
    let out = run(rscp()
        .args(["-s", "-v", "-F"])
        .arg(&config)
        .arg(work.path().join("big"))
        .arg(work.path().join("small"))
        .arg(format!("far:{}", work.path().join("got").display())));
    drop(far);
    let said = stderr(&out);
    assert_success(&out);
    assert!(
        said.contains("SFTP: big files go over 10 sessions"),
        "{said}"
    );
    assert_eq!(fs::read(work.path().join("got/big")).unwrap(), big);
    assert_eq!(fs::read(work.path().join("got/small")).unwrap(), b"small");
}

/// `-X buffer=256K`, the most scp takes, is more than one message holds
/// with its header: it is clamped to the server's limit (a larger READ or
/// WRITE would be refused), and the copy is whole both ways.
#[test]
fn a_buffer_above_one_message_is_clamped() {
    let Some(server) = sftp_server() else { return };
    let work = tempfile::tempdir().unwrap();
    let data = pattern(3_000_017, 4);
    write(work.path().join("f"), &data);
    let up = run(rscp_direct(server)
        .args(["-X", "buffer=256K", "-v"])
        .arg(work.path().join("f"))
        .arg(at(&work.path().join("g"))));
    assert_success(&up);
    assert!(fs::read(work.path().join("g")).unwrap() == data);
    assert!(
        stderr(&up).contains("SFTP session: 261120 bytes per read, 261120 per write"),
        "{}",
        stderr(&up)
    );
    let down = run(rscp_direct(server)
        .args(["-X", "buffer=256K"])
        .arg(at(&work.path().join("g")))
        .arg(work.path().join("h")));
    assert_success(&down);
    assert_eq!(stderr(&down), "");
    assert!(fs::read(work.path().join("h")).unwrap() == data);
}
