//! rscp as the client, through a real OpenSSH sshd, with OpenSSH's own
//! `scp -t` / `scp -f` on the far side.

mod common;

use std::fs;

use common::*;

#[test]
fn upload_and_download_one_file() {
    let Some(sshd) = Sshd::start() else { return };
    let work = tempfile::tempdir().unwrap();
    let data = pattern(1_234_567, 1);
    write(work.path().join("f.bin"), &data);
    fs::create_dir(work.path().join("remote")).unwrap();
    fs::create_dir(work.path().join("back")).unwrap();

    let up = run(sshd
        .rscp()
        .arg(work.path().join("f.bin"))
        .arg(sshd.remote(work.path().join("remote"))));
    assert_success(&up);
    assert_eq!(stderr(&up), "");
    assert_eq!(
        stdout(&up),
        "",
        "nothing on stdout when it is not a terminal"
    );
    assert!(fs::read(work.path().join("remote/f.bin")).unwrap() == data);

    let down = run(sshd
        .rscp()
        .arg(sshd.remote(work.path().join("remote/f.bin")))
        .arg(work.path().join("back/renamed.bin")));
    assert_success(&down);
    assert_eq!(stderr(&down), "");
    assert!(fs::read(work.path().join("back/renamed.bin")).unwrap() == data);
}

#[test]
fn trees_go_up_and_come_back_with_r() {
    let Some(sshd) = Sshd::start() else { return };
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    sample_tree(&tree);
    fs::create_dir(work.path().join("up")).unwrap();

    let up = run(sshd
        .rscp()
        .arg("-r")
        .arg(&tree)
        .arg(sshd.remote(work.path().join("up"))));
    assert_success(&up);
    assert_same_tree(&tree, &work.path().join("up/tree"));

    // Into a target that does not exist yet: it becomes the copy.
    let down = run(sshd
        .rscp()
        .arg("-r")
        .arg(sshd.remote(work.path().join("up/tree")))
        .arg(work.path().join("down")));
    assert_success(&down);
    assert_eq!(stderr(&down), "");
    assert_same_tree(&tree, &work.path().join("down"));
}

#[test]
fn preserve_keeps_modes_and_times_both_ways() {
    let Some(sshd) = Sshd::start() else { return };
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    sample_tree(&tree);
    chmod(tree.join("sub"), 0o750);
    chmod(tree.join("sub/deeper/data.bin"), 0o604);
    // Directories' access times as set: reading one (as the walk does,
    // after its times are taken) moves its own, so they are not read again.
    let mut directories = vec![(std::path::PathBuf::new(), 999_999_998)];
    for (i, rel) in listing(&tree).iter().rev().enumerate() {
        let atime = 1_100_000_000 + i as i64;
        set_times(tree.join(rel), 1_000_000_000 + i as i64 * 1000, atime);
        if tree.join(rel).is_dir() {
            directories.push((rel.clone(), atime));
        }
    }
    set_times(&tree, 999_999_999, 999_999_998);
    assert_eq!(directories.len(), 4);
    fs::create_dir(work.path().join("up")).unwrap();

    let up = run(sshd
        .rscp()
        .arg("-rp")
        .arg(&tree)
        .arg(sshd.remote(work.path().join("up"))));
    assert_success(&up);
    for (rel, set) in &directories {
        let landed = work.path().join("up/tree").join(rel);
        assert_eq!(atime(&landed), *set, "atime of {rel:?}");
    }
    assert_same_tree(&tree, &work.path().join("up/tree"));
    assert_same_metadata(&tree, &work.path().join("up/tree"), true);
    assert_eq!(
        atime(work.path().join("up/tree/a.txt")),
        atime(tree.join("a.txt"))
    );

    let down = run(sshd
        .rscp()
        .arg("-r")
        .arg("-p")
        .arg(sshd.remote(work.path().join("up/tree")))
        .arg(work.path().join("down")));
    assert_success(&down);
    assert_same_metadata(&tree, &work.path().join("down"), true);
    assert_eq!(
        atime(work.path().join("down/sub/b.txt")),
        atime(tree.join("sub/b.txt"))
    );
}

#[test]
fn without_p_modes_follow_the_umask_and_times_are_new() {
    let Some(sshd) = Sshd::start() else { return };
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("exec.sh");
    write(&src, b"#!/bin/sh\n");
    chmod(&src, 0o4777);
    set_times(&src, 1_000_000_000, 1_000_000_000);
    fs::create_dir(work.path().join("down")).unwrap();

    // The umask of rscp's process (inherited from this one) applies.
    let down = run(sshd
        .rscp()
        .arg(sshd.remote(&src))
        .arg(work.path().join("down")));
    assert_success(&down);
    let copy = work.path().join("down/exec.sh");
    let umask = current_umask();
    assert_eq!(mode(&copy), 0o777 & !umask, "setuid dropped, umask applied");
    assert!(
        mtime(&copy) > 1_000_000_000,
        "times are not preserved without -p"
    );
}

#[test]
fn clobbering_truncates_and_keeps_the_existing_mode() {
    let Some(sshd) = Sshd::start() else { return };
    let work = tempfile::tempdir().unwrap();
    write(work.path().join("small"), b"new contents");
    chmod(work.path().join("small"), 0o644);
    let existing = work.path().join("existing");
    write(&existing, &pattern(100_000, 3));
    chmod(&existing, 0o600);

    let down = run(sshd
        .rscp()
        .arg(sshd.remote(work.path().join("small")))
        .arg(&existing));
    assert_success(&down);
    assert_eq!(fs::read(&existing).unwrap(), b"new contents");
    assert_eq!(
        mode(&existing),
        0o600,
        "an existing file keeps its mode without -p"
    );

    write(&existing, &pattern(100_000, 4));
    let up = run(sshd
        .rscp()
        .arg(work.path().join("small"))
        .arg(sshd.remote(&existing)));
    assert_success(&up);
    assert_eq!(fs::read(&existing).unwrap(), b"new contents");
}

#[test]
fn copying_a_file_onto_itself_leaves_it_intact() {
    let Some(sshd) = Sshd::start() else { return };
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("self.bin");
    let data = pattern(3_000_000, 9);
    write(&file, &data);

    let up = run(sshd.rscp().arg(&file).arg(sshd.remote(&file)));
    assert_success(&up);
    assert!(fs::read(&file).unwrap() == data, "upload onto itself");

    let down = run(sshd.rscp().arg(sshd.remote(&file)).arg(&file));
    assert_success(&down);
    assert!(fs::read(&file).unwrap() == data, "download onto itself");
}

#[test]
fn empty_files_and_odd_names() {
    let Some(sshd) = Sshd::start() else { return };
    let work = tempfile::tempdir().unwrap();
    let names = [
        "empty",
        "with space.txt",
        "h\u{e9}llo w\u{f6}rld \u{2713}.txt",
        "-dash",
    ];
    for (i, name) in names.iter().enumerate() {
        let contents = if i == 0 {
            Vec::new()
        } else {
            pattern(1000 + i, i as u64)
        };
        write(work.path().join("src").join(name), &contents);
    }
    fs::create_dir_all(work.path().join("up")).unwrap();
    fs::create_dir_all(work.path().join("down")).unwrap();

    let mut up = sshd.rscp();
    for name in names {
        up.arg(work.path().join("src").join(name));
    }
    let up = run(up.arg(sshd.remote(work.path().join("up"))));
    assert_success(&up);
    assert_same_tree(&work.path().join("src"), &work.path().join("up"));

    // Remote paths go to the remote shell: names with spaces are quoted
    // by the user, as with scp.
    for name in names {
        let remote = format!(
            "127.0.0.1:'{}'",
            work.path().join("up").join(name).display()
        );
        let down = run(sshd.rscp().arg(remote).arg(work.path().join("down")));
        assert_success(&down);
    }
    assert_same_tree(&work.path().join("src"), &work.path().join("down"));
}

#[test]
fn a_missing_source_among_several_fails_the_run_but_not_the_others() {
    let Some(sshd) = Sshd::start() else { return };
    let work = tempfile::tempdir().unwrap();
    write(work.path().join("one"), b"1");
    write(work.path().join("two"), b"2");
    fs::create_dir(work.path().join("up")).unwrap();

    let up = run(sshd
        .rscp()
        .arg(work.path().join("one"))
        .arg(work.path().join("missing"))
        .arg(work.path().join("two"))
        .arg(sshd.remote(work.path().join("up"))));
    assert_exit(&up, 1);
    assert_eq!(
        stderr(&up),
        format!(
            "rscp: {}: No such file or directory\n",
            work.path().join("missing").display()
        )
    );
    assert_eq!(fs::read(work.path().join("up/one")).unwrap(), b"1");
    assert_eq!(fs::read(work.path().join("up/two")).unwrap(), b"2");

    // Downloads: the far side's message, then the next source.
    fs::create_dir(work.path().join("down")).unwrap();
    let down = run(sshd
        .rscp()
        .arg(sshd.remote(work.path().join("one")))
        .arg(sshd.remote(work.path().join("missing")))
        .arg(sshd.remote(work.path().join("two")))
        .arg(work.path().join("down")));
    assert_exit(&down, 1);
    assert_eq!(
        stderr(&down),
        format!(
            "scp: {}: No such file or directory\n",
            work.path().join("missing").display()
        )
    );
    assert_eq!(fs::read(work.path().join("down/one")).unwrap(), b"1");
    assert_eq!(fs::read(work.path().join("down/two")).unwrap(), b"2");
}

#[test]
fn a_directory_without_r_is_refused_per_file() {
    let Some(sshd) = Sshd::start() else { return };
    let work = tempfile::tempdir().unwrap();
    sample_tree(&work.path().join("tree"));
    write(work.path().join("file"), b"f");
    fs::create_dir(work.path().join("up")).unwrap();

    let up = run(sshd
        .rscp()
        .arg(work.path().join("tree"))
        .arg(work.path().join("file"))
        .arg(sshd.remote(work.path().join("up"))));
    assert_exit(&up, 1);
    assert_eq!(
        stderr(&up),
        format!(
            "rscp: {}: not a regular file\n",
            work.path().join("tree").display()
        )
    );
    assert_eq!(fs::read(work.path().join("up/file")).unwrap(), b"f");
    assert!(!work.path().join("up/tree").exists());
}

#[test]
fn remote_globs_are_expanded_by_the_remote_shell() {
    let Some(sshd) = Sshd::start() else { return };
    let work = tempfile::tempdir().unwrap();
    write(work.path().join("r/a.txt"), b"a");
    write(work.path().join("r/b.txt"), b"b");
    write(work.path().join("r/c.log"), b"c");
    fs::create_dir(work.path().join("down")).unwrap();

    let down = run(sshd
        .rscp()
        .arg(sshd.remote(work.path().join("r/*.txt")))
        .arg(work.path().join("down")));
    assert_success(&down);
    assert_eq!(
        listing(&work.path().join("down")),
        vec![std::path::PathBuf::from("a.txt"), "b.txt".into()]
    );
}

#[test]
fn several_sources_need_a_directory_target() {
    let Some(sshd) = Sshd::start() else { return };
    let work = tempfile::tempdir().unwrap();
    write(work.path().join("one"), b"1");
    write(work.path().join("two"), b"2");
    write(work.path().join("plain"), b"p");

    let down = run(sshd
        .rscp()
        .arg(sshd.remote(work.path().join("one")))
        .arg(sshd.remote(work.path().join("two")))
        .arg(work.path().join("plain")));
    assert_exit(&down, 1);
    assert_eq!(
        stderr(&down),
        format!(
            "rscp: {}: Not a directory\n",
            work.path().join("plain").display()
        )
    );
    assert_eq!(fs::read(work.path().join("plain")).unwrap(), b"p");

    // Upload: the remote scp refuses (-d), and nothing is written.
    let up = run(sshd
        .rscp()
        .arg(work.path().join("one"))
        .arg(work.path().join("two"))
        .arg(sshd.remote(work.path().join("plain"))));
    assert_exit(&up, 1);
    assert_eq!(
        stderr(&up),
        format!(
            "scp: {}: Not a directory\n",
            work.path().join("plain").display()
        )
    );
    assert_eq!(fs::read(work.path().join("plain")).unwrap(), b"p");
}

#[test]
fn an_unreachable_host_fails_the_run() {
    let Some(sshd) = Sshd::start() else { return };
    let work = tempfile::tempdir().unwrap();
    write(work.path().join("f"), b"x");
    // Nothing listens on port 1.
    let up = run(sshd
        .rscp()
        .arg("-P")
        .arg("1")
        .arg(work.path().join("f"))
        .arg("127.0.0.1:/tmp/x"));
    assert_exit(&up, 1);
    assert_eq!(
        stderr(&up),
        "rscp: connect to host 127.0.0.1 port 1: Connection refused\n"
    );

    let down = run(sshd
        .rscp()
        .arg("-P1")
        .arg("127.0.0.1:/tmp/x")
        .arg(work.path()));
    assert_exit(&down, 1);
    assert_eq!(
        stderr(&down),
        "rscp: connect to host 127.0.0.1 port 1: Connection refused\n"
    );

    // Through ssh, scp's way: ssh says why, then the copy has lost its peer.
    let up = run(sshd
        .rscp_through_ssh()
        .arg("-P")
        .arg("1")
        .arg(work.path().join("f"))
        .arg("127.0.0.1:/tmp/x"));
    assert_exit(&up, 1);
    assert!(
        stderr(&up).ends_with("rscp: lost connection\n"),
        "{}",
        stderr(&up)
    );
    let down = run(sshd
        .rscp_through_ssh()
        .arg("-P1")
        .arg("127.0.0.1:/tmp/x")
        .arg(work.path()));
    assert_exit(&down, 1);
}

#[test]
fn verbose_shows_what_is_executed_and_sent() {
    let Some(sshd) = Sshd::start() else { return };
    let work = tempfile::tempdir().unwrap();
    write(work.path().join("f"), b"abc");
    chmod(work.path().join("f"), 0o644);
    fs::create_dir(work.path().join("up")).unwrap();
    let target = sshd.remote(work.path().join("up"));
    let user = whoami();

    let up = run(sshd
        .rscp()
        .arg("-v")
        .arg(work.path().join("f"))
        .arg(&target));
    assert_success(&up);
    let err = stderr(&up);
    for expected in [
        format!(
            "Executing: program (built-in ssh) host 127.0.0.1, user {user}, command scp -v -t {}\n",
            work.path().join("up").display()
        ),
        format!(
            "debug1: Connecting to 127.0.0.1 [127.0.0.1] port {}.\n",
            sshd.port
        ),
        "debug1: kex: algorithm: ".into(),
        "debug1: Authenticated to 127.0.0.1 using \"publickey\".\n".into(),
        "Sending file modes: C0644 3 f\n".into(),
        // The remote scp's own -v line, relayed from the channel's stderr.
        "Sink: C0644 3 f\n".into(),
    ] {
        assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    }
    assert!(
        !err.contains("\\015"),
        "a CRLF line end was shown escaped:\n{err}"
    );

    let up = run(sshd
        .rscp_through_ssh()
        .arg("-v")
        .arg(work.path().join("f"))
        .arg(&target));
    assert_success(&up);
    let err = stderr(&up);
    assert!(
        err.contains(&format!(
            "Executing: program ssh host 127.0.0.1, user (unspecified), command scp -v -t {}\n",
            work.path().join("up").display()
        )),
        "{err}"
    );
    assert!(err.contains("Sending file modes: C0644 3 f\n"), "{err}");
    assert!(err.contains("Sink: C0644 3 f\n"), "{err}");
}

#[test]
fn the_ssh_program_transport_still_copies() {
    let Some(sshd) = Sshd::start() else { return };
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    sample_tree(&tree);
    let up = run(sshd
        .rscp_through_ssh()
        .arg("-rp")
        .arg(&tree)
        .arg(sshd.remote(work.path().join("up"))));
    assert_success(&up);
    assert_same_tree(&tree, &work.path().join("up"));
    let down = run(sshd
        .rscp_through_ssh()
        .arg("-rp")
        .arg(sshd.remote(work.path().join("up")))
        .arg(work.path().join("down")));
    assert_success(&down);
    assert_same_metadata(&tree, &work.path().join("down"), true);
}

#[test]
fn a_large_file_round_trips() {
    let Some(sshd) = Sshd::start() else { return };
    let work = tempfile::tempdir().unwrap();
    let data = pattern(40 * 1024 * 1024 + 13, 11);
    write(work.path().join("big"), &data);
    let up = run(sshd
        .rscp()
        .arg(work.path().join("big"))
        .arg(sshd.remote(work.path().join("big.up"))));
    assert_success(&up);
    let down = run(sshd
        .rscp()
        .arg(sshd.remote(work.path().join("big.up")))
        .arg(work.path().join("big.down")));
    assert_success(&down);
    assert!(fs::read(work.path().join("big.down")).unwrap() == data);
}

/// -l paces file data both ways. Only a lower bound is asserted: load can
/// make a copy slower, never faster, so this cannot fail for a busy
/// machine; the pacer's figures are unit-tested with paused time, and
/// speed belongs to scripts/bench.
#[test]
fn bandwidth_limit_paces_both_directions() {
    let Some(sshd) = Sshd::start() else { return };
    let work = tempfile::tempdir().unwrap();
    let data = pattern(200 * 1024, 17);
    write(work.path().join("f"), &data);
    // 800 Kbit/s with K = 1024 is 100 KiB/s: 200 KiB take at least 2 s
    // (less the first piece, which goes at once).
    let at_least = std::time::Duration::from_millis(1800);
    let timed = |command: &mut std::process::Command| {
        let started = std::time::Instant::now();
        let out = run(command);
        (out, started.elapsed())
    };
    let (up, took) = timed(
        sshd.rscp()
            .arg("-l")
            .arg("800")
            .arg(work.path().join("f"))
            .arg(sshd.remote(work.path().join("up"))),
    );
    assert_success(&up);
    assert!(fs::read(work.path().join("up")).unwrap() == data);
    assert!(took >= at_least, "upload took {took:?}");
    let (down, took) = timed(
        sshd.rscp()
            .arg("-l800")
            .arg(sshd.remote(work.path().join("f")))
            .arg(work.path().join("down")),
    );
    assert_success(&down);
    assert!(fs::read(work.path().join("down")).unwrap() == data);
    assert!(took >= at_least, "download took {took:?}");
}

/// A target that cannot seek (a pipe, a FIFO) is written in order, as scp
/// writes it; with -p its mode and times are left alone.
#[test]
fn downloads_into_pipes_and_fifos() {
    let Some(sshd) = Sshd::start() else { return };
    let work = tempfile::tempdir().unwrap();
    // Several chunks, and runs of zeros (which a new file would skip).
    let mut data = pattern(3 * 256 * 1024 + 77, 21);
    data[300_000..600_000].fill(0);
    write(work.path().join("f"), &data);
    chmod(work.path().join("f"), 0o600);

    let piped = run(sshd
        .rscp()
        .arg(sshd.remote(work.path().join("f")))
        .arg("/dev/stdout"));
    assert_success(&piped);
    assert_eq!(stderr(&piped), "");
    assert!(
        piped.stdout == data,
        "{} bytes on stdout",
        piped.stdout.len()
    );

    let fifo = work.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    chmod(&fifo, 0o640);
    for flags in [&[][..], &["-p"][..]] {
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || fs::read(fifo).unwrap())
        };
        let out = run(sshd
            .rscp()
            .args(flags)
            .arg(sshd.remote(work.path().join("f")))
            .arg(&fifo));
        assert_success(&out);
        assert_eq!(stderr(&out), "");
        assert!(reader.join().unwrap() == data, "{flags:?}");
        assert_eq!(mode(&fifo), 0o640, "{flags:?}");
    }
}

/// A local name with a newline cannot go into a record as it is: it goes
/// encoded, the same name OpenSSH's scp -O makes of it (checked side by
/// side), never cut at the newline (which desynchronised and hung).
#[test]
fn names_with_a_newline_arrive_as_openssh_sends_them() {
    use std::os::unix::ffi::OsStrExt;
    let Some(sshd) = Sshd::start() else { return };
    let work = tempfile::tempdir().unwrap();
    let names: [&[u8]; 3] = [b"a\nb", b"x\\y\nz", b"caf\xe9\nx"];
    let local = work.path().join("local");
    for name in names {
        write(local.join(std::ffi::OsStr::from_bytes(name)), name);
    }
    let by_rscp = work.path().join("by-rscp");
    let by_scp = work.path().join("by-scp");
    for dir in [&by_rscp, &by_scp] {
        fs::create_dir(dir).unwrap();
    }
    let sources: Vec<_> = names
        .iter()
        .map(|n| local.join(std::ffi::OsStr::from_bytes(n)))
        .collect();
    let up = run(sshd
        .rscp()
        .arg("-oServerAliveInterval=1")
        .args(&sources)
        .arg(sshd.remote(&by_rscp)));
    assert_success(&up);
    let up = run(sshd.openssh_scp().args(&sources).arg(sshd.remote(&by_scp)));
    assert_success(&up);
    assert_eq!(listing(&by_rscp), listing(&by_scp));
    assert_eq!(
        listing(&by_rscp),
        [
            std::path::PathBuf::from("a\\^Jb"),
            std::path::PathBuf::from(std::ffi::OsStr::from_bytes(b"caf\\M-i\\^Jx")),
            std::path::PathBuf::from("x\\\\y\\^Jz"),
        ]
    );
    assert_eq!(fs::read(by_rscp.join("a\\^Jb")).unwrap(), b"a\nb");

    // A directory too (OpenSSH cannot open it once it has encoded the name).
    let tree = work.path().join("tree");
    write(tree.join("d\nir/f"), b"inside");
    let up = run(sshd
        .rscp()
        .arg("-r")
        .arg(tree.join("d\nir"))
        .arg(sshd.remote(&by_rscp)));
    assert_success(&up);
    assert_eq!(fs::read(by_rscp.join("d\\^Jir/f")).unwrap(), b"inside");
}
