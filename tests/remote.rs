//! Copies between two remote hosts: through this host (`-3`, the default)
//! and on the origin host (`-R`).

mod common;

use std::fs;
use std::path::Path;

use common::*;

/// A tree with times, to copy between hosts.
fn tree_in(dir: &Path) -> std::path::PathBuf {
    let tree = dir.join("tree");
    sample_tree(&tree);
    for (i, rel) in listing(&tree).iter().rev().enumerate() {
        set_times(
            tree.join(rel),
            1_500_000_000 + i as i64,
            1_500_000_500 + i as i64,
        );
    }
    tree
}

#[test]
fn through_this_host_between_two_paths_of_one_user() {
    let Some(sshd) = Sshd::start() else { return };
    let work = tempfile::tempdir().unwrap();
    let tree = tree_in(work.path());
    let out = run(sshd
        .rscp()
        .arg("-rp")
        .arg(sshd.remote(&tree))
        .arg(sshd.remote(work.path().join("copy"))));
    assert_success(&out);
    assert_eq!(stderr(&out), "");
    assert_same_tree(&tree, &work.path().join("copy"));
    assert_same_metadata(&tree, &work.path().join("copy"), true);
}

#[test]
fn through_this_host_between_two_users_with_uris() {
    let Some(sshd) = Sshd::start() else { return };
    let Some(user) = TestUser::create() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    chmod(work.path(), 0o755);
    let tree = tree_in(work.path());
    let into = user.home.join("received");
    fs::create_dir(&into).unwrap();
    let status = std::process::Command::new("chown")
        .arg(format!("{}:", user.name))
        .arg(&into)
        .status()
        .unwrap();
    assert!(status.success());
    let out = run(sshd
        .rscp()
        .arg("-r")
        .arg(format!(
            "scp://{}@127.0.0.1:{}/{}",
            whoami(),
            sshd.port,
            tree.display()
        ))
        .arg(format!(
            "scp://{}@127.0.0.1:{}/{}",
            user.name,
            sshd.port,
            into.display()
        )));
    assert_success(&out);
    assert_same_tree(&tree, &into.join("tree"));
    // Written by the second user.
    use std::os::unix::fs::MetadataExt;
    let owner = fs::metadata(into.join("tree/a.txt")).unwrap().uid();
    let expected = nix::unistd::User::from_name(&user.name)
        .unwrap()
        .unwrap()
        .uid
        .as_raw();
    assert_eq!(owner, expected);
}

#[test]
fn a_hostile_origin_is_stopped_at_this_host() {
    let work = tempfile::tempdir().unwrap();
    let stream = work.path().join("stream");
    write(&stream, b"C0644 5 ../escaped\nhello\0");
    let into = work.path().join("into");
    fs::create_dir(&into).unwrap();
    // As `-S` program: the origin (`scp -f`) plays hostile, the destination
    // (`scp -t`) is OpenSSH's real scp, run right here.
    let program = work.path().join("two-faced-ssh");
    fs::write(
        &program,
        format!(
            "#!/bin/bash\nlast=\"${{@: -1}}\"\ncase \"$last\" in\n  *' -f '*) head -c1 >/dev/null; cat '{}'; exec cat >/dev/null ;;\n  *) exec sh -c \"$last\" ;;\nesac\n",
            stream.display()
        ),
    )
    .unwrap();
    chmod(&program, 0o755);
    let out = run(rscp()
        .arg("-S")
        .arg(&program)
        .arg("origin:escaped")
        .arg(format!("destination:{}", into.display())));
    assert_exit(&out, 1);
    assert_eq!(
        stderr(&out),
        "rscp: protocol error: unexpected filename: ../escaped\n"
    );
    assert!(listing(&into).is_empty());
    assert!(!work.path().join("escaped").exists());
}

#[test]
fn on_the_origin_host_with_its_own_ssh() {
    let Some(sshd) = Sshd::start() else { return };
    let Some(user) = TestUser::create() else {
        return;
    };
    // The origin's user reaches the destination with its own ~/.ssh.
    let ssh = user.home.join(".ssh");
    fs::create_dir_all(&ssh).unwrap();
    fs::copy(sshd.client_key(), ssh.join("id_ed25519")).unwrap();
    fs::write(
        ssh.join("known_hosts"),
        format!("{}\n", sshd.known_hosts_line()),
    )
    .unwrap();
    fs::write(
        ssh.join("config"),
        format!(
            "Host 127.0.0.1\n\tPort {}\n\tBatchMode yes\n\tStrictHostKeyChecking yes\n",
            sshd.port
        ),
    )
    .unwrap();
    chmod(ssh.join("id_ed25519"), 0o600);
    let status = std::process::Command::new("chown")
        .arg("-R")
        .arg(format!("{}:", user.name))
        .arg(&ssh)
        .status()
        .unwrap();
    assert!(status.success());
    let source = user.home.join("from-origin.bin");
    write(&source, &pattern(123_456, 8));
    let status = std::process::Command::new("chown")
        .arg(format!("{}:", user.name))
        .arg(&source)
        .status()
        .unwrap();
    assert!(status.success());

    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("arrived.bin");
    let out = run(sshd
        .rscp()
        .arg("-R")
        .arg(format!("{}@127.0.0.1:{}", user.name, source.display()))
        .arg(format!("{}@127.0.0.1:{}", whoami(), target.display())));
    assert_success(&out);
    assert!(fs::read(&target).unwrap() == fs::read(&source).unwrap());
    // The origin's own scp made the copy: the destination saw its login.
    assert!(
        sshd.log()
            .contains(&format!("Accepted publickey for {}", whoami()))
    );
}

#[test]
fn on_the_origin_host_a_target_port_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let out = run(rscp()
        .arg("-R")
        .arg("origin:/x")
        .arg("scp://target:2222/y")
        .current_dir(work.path()));
    assert_exit(&out, 255);
    assert_eq!(
        stderr(&out),
        "rscp: target port not supported with two remote hosts and the -R option\n"
    );
}

/// rscp at both ends, in every direction (up, down, and through this host
/// with -3), with and without -r and -p.
#[test]
fn rscp_to_rscp_in_every_direction() {
    let Some(sshd) = Sshd::start_with_rscp_as_scp() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let tree = tree_in(work.path());
    // The far side is rscp: its messages say so.
    let missing = work.path().join("missing");
    let out = run(sshd.rscp().arg(sshd.remote(&missing)).arg(work.path()));
    assert_exit(&out, 1);
    assert_eq!(
        stderr(&out),
        format!("rscp: {}: No such file or directory\n", missing.display())
    );
    for flags in [&[][..], &["-p"], &["-r"], &["-rp"]] {
        let recursive = flags.iter().any(|f| f.contains('r'));
        let preserve = flags.iter().any(|f| f.contains('p'));
        let source = if recursive {
            tree.clone()
        } else {
            tree.join("a.txt")
        };
        let tag = flags.concat();
        let up = work.path().join(format!("up{tag}"));
        let down = work.path().join(format!("down{tag}"));
        let across = work.path().join(format!("across{tag}"));
        let copies = [
            ("up", source.display().to_string(), sshd.remote(&up), &up),
            (
                "down",
                sshd.remote(&source),
                down.display().to_string(),
                &down,
            ),
            ("-3", sshd.remote(&source), sshd.remote(&across), &across),
        ];
        for (way, from, to, copy) in copies {
            let mut command = sshd.rscp();
            if way == "-3" {
                command.arg("-3");
            }
            let out = run(command.args(flags).arg(&from).arg(&to));
            assert_success(&out);
            assert_eq!(stderr(&out), "", "{way} {flags:?}");
            if recursive {
                assert_same_tree(&source, copy);
            } else {
                assert_eq!(fs::read(copy).unwrap(), fs::read(&source).unwrap());
            }
            if preserve && recursive {
                assert_same_metadata(&source, copy, true);
            } else if preserve {
                assert_eq!((mode(copy), mtime(copy)), (mode(&source), mtime(&source)));
            }
        }
    }
}

/// -3 between two paths of one host, with more data than the windows hold:
/// on one connection the origin's unread data stopped the session while
/// the destination's write waited for window (it hung at 30-100 MB).
#[test]
fn through_this_host_a_big_file_on_one_host() {
    let Some(sshd) = Sshd::start() else { return };
    let work = tempfile::tempdir().unwrap();
    let big = work.path().join("big");
    fs::File::create(&big).unwrap().set_len(300 << 20).unwrap();
    let copy = work.path().join("copy");
    let out = run_within(
        sshd.rscp()
            .arg("-3")
            .arg(sshd.remote(&big))
            .arg(sshd.remote(&copy)),
        std::time::Duration::from_secs(60),
    );
    assert_success(&out);
    assert_eq!(fs::metadata(&copy).unwrap().len(), 300 << 20);
    let zeros = fs::read(&copy).unwrap().iter().all(|&b| b == 0);
    assert!(zeros);
}
