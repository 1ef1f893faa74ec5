//! The steps of OpenSSH's own acceptance tests for scp (openssh-portable's
//! regress/scp.sh, scp-uri.sh and scp3.sh), each as a test of ours against
//! a real sshd with OpenSSH's scp -t/-f on the far side, and (their sftp
//! half, the `_over_sftp` tests) with its SFTP server. The
//! steps other test files already cover are named in their place below;
//! the comments give the step each test stands for.
//!
//! Covered elsewhere: file to file, up, down, in place and clobbering
//! (sshd.rs: upload_and_download_one_file, copying_a_file_onto_itself_
//! leaves_it_intact, clobbering_truncates_and_keeps_the_existing_mode);
//! shell metacharacters in local names (local.rs: shell_metacharacters_
//! are_just_names).

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use common::*;

/// scp.sh's "forest": a file, a symlink to it, a directory with a file,
/// and a symlink to that directory. Copies follow the links.
fn forest(root: &Path) {
    write(root.join("copy"), &pattern(100_000, 31));
    symlink("copy", root.join("copy-link")).unwrap();
    write(root.join("subdir/copy"), &pattern(5_000, 32));
    symlink("subdir", root.join("subdir-link")).unwrap();
}

/// Trees equal with the links followed (what `diff -r` compares).
fn assert_same_followed(expected: &Path, actual: &Path) {
    assert_same_tree(expected, actual);
    for rel in listing(actual) {
        let meta = fs::symlink_metadata(actual.join(&rel)).unwrap();
        assert!(
            !meta.file_type().is_symlink(),
            "{} is a link",
            rel.display()
        );
    }
}

// scp.sh: recursive local dir to remote dir, remote dir to local dir,
// local dir to local dir (the forest, links followed).
fn recursive_copies_of_a_forest_follow_links_in(mode: &[&str]) {
    let Some(sshd) = Sshd::start() else { return };
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("forest");
    forest(&source);
    let up = work.path().join("up");
    assert_success(&run(sshd
        .rscp()
        .args(mode)
        .arg("-r")
        .arg(&source)
        .arg(sshd.remote(&up))));
    assert_same_followed(&source, &up);
    let down = work.path().join("down");
    assert_success(&run(sshd
        .rscp()
        .args(mode)
        .arg("-r")
        .arg(sshd.remote(&source))
        .arg(&down)));
    assert_same_followed(&source, &down);
    let local = work.path().join("local");
    assert_success(&run(rscp().arg("-r").arg(&source).arg(&local)));
    assert_same_followed(&source, &local);
}

#[test]
fn recursive_copies_of_a_forest_follow_links() {
    recursive_copies_of_a_forest_follow_links_in(&[]);
}

/// The same step in SFTP mode (their sftp half: `-s`).
#[test]
fn recursive_copies_of_a_forest_follow_links_over_sftp() {
    recursive_copies_of_a_forest_follow_links_in(&["-s"]);
}

// scp.sh: unmatched glob file upload and download, then the same for a
// directory with -r. A remote name with glob characters that match
// nothing is passed on by the remote shell as written.
fn names_with_glob_characters_that_match_nothing_in(mode: &[&str]) {
    let Some(sshd) = Sshd::start() else { return };
    let work = tempfile::tempdir().unwrap();
    let data = pattern(70_000, 33);
    write(work.path().join("data"), &data);
    let remote = work.path().join("remote");
    fs::create_dir(&remote).unwrap();

    let glob = remote.join("copy.glob[123]");
    let up = run(sshd
        .rscp()
        .args(mode)
        .arg(work.path().join("data"))
        .arg(sshd.remote(&glob)));
    assert_success(&up);
    assert!(fs::read(&glob).unwrap() == data);
    let back = work.path().join("copy2");
    let down = run(sshd.rscp().args(mode).arg(sshd.remote(&glob)).arg(&back));
    assert_success(&down);
    assert_eq!(stderr(&down), "");
    assert!(fs::read(&back).unwrap() == data);

    let dir = work.path().join("dir");
    write(dir.join("copy"), &data);
    write(dir.join("copy.glob[1234]"), b"literal");
    let glob_dir = remote.join("copy.dd.glob[456]");
    let up = run(sshd
        .rscp()
        .args(mode)
        .arg("-r")
        .arg(&dir)
        .arg(sshd.remote(&glob_dir)));
    assert_success(&up);
    assert_same_tree(&dir, &glob_dir);
    let back = work.path().join("dir2");
    let down = run(sshd
        .rscp()
        .args(mode)
        .arg("-r")
        .arg(sshd.remote(&glob_dir))
        .arg(&back));
    assert_success(&down);
    assert_eq!(stderr(&down), "");
    assert_same_tree(&dir, &back);
}

#[test]
fn names_with_glob_characters_that_match_nothing() {
    names_with_glob_characters_that_match_nothing_in(&[]);
}

/// The same step in SFTP mode (their sftp half: `-s`).
#[test]
fn names_with_glob_characters_that_match_nothing_over_sftp() {
    names_with_glob_characters_that_match_nothing_in(&["-s"]);
}

// scp.sh: detect a non-directory target (several sources, the last
// operand an existing file), locally and with -3 (scp3.sh).
#[test]
fn several_sources_into_a_file_are_refused() {
    let Some(sshd) = Sshd::start() else { return };
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let copy = work.path().join("copy");
    let copy2 = work.path().join("copy2");
    write(&data, b"data");
    write(&copy, b"copy");
    write(&copy2, b"copy2");

    let out = run(rscp().arg(&data).arg(&copy).arg(&copy2));
    assert_exit(&out, 1);
    assert_eq!(
        stderr(&out),
        format!("rscp: {}: Not a directory\n", copy2.display())
    );
    assert_eq!(fs::read(&copy2).unwrap(), b"copy2");

    let out = run(sshd
        .rscp()
        .arg("-3")
        .arg(sshd.remote(&data))
        .arg(sshd.remote(&copy))
        .arg(sshd.remote(&copy2)));
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains(&format!("{}: Not a directory", copy2.display())),
        "{}",
        stderr(&out)
    );
    assert_eq!(fs::read(&copy2).unwrap(), b"copy2");
}

// scp.sh in SFTP mode: several sources into an existing file.
#[test]
fn several_sources_into_a_file_are_refused_over_sftp() {
    let Some(sshd) = Sshd::start() else { return };
    let work = tempfile::tempdir().unwrap();
    let (data, copy, copy2) = (
        work.path().join("data"),
        work.path().join("copy"),
        work.path().join("copy2"),
    );
    write(&data, b"data");
    write(&copy, b"copy");
    write(&copy2, b"copy2");
    let out = run(sshd
        .rscp()
        .arg("-s")
        .arg(&data)
        .arg(&copy)
        .arg(sshd.remote(&copy2)));
    assert_exit(&out, 1);
    assert_eq!(
        stderr(&out),
        format!("rscp: {}: Not a directory\n", copy2.display())
    );
    assert_eq!(fs::read(&copy2).unwrap(), b"copy2");
}

// scp3.sh: -3 file to file, file into an existing directory, and a
// forest with -r into a directory that does not exist yet.
fn through_this_host_files_directories_and_forests_in(mode: &[&str]) {
    let Some(sshd) = Sshd::start() else { return };
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    write(&data, &pattern(300_000, 34));
    let copy = work.path().join("copy");
    let out = run(sshd
        .rscp()
        .args(mode)
        .arg("-3")
        .arg(sshd.remote(&data))
        .arg(sshd.remote(&copy)));
    assert_success(&out);
    assert_eq!(fs::read(&copy).unwrap(), fs::read(&data).unwrap());

    let dir = work.path().join("dir");
    fs::create_dir(&dir).unwrap();
    let out = run(sshd
        .rscp()
        .args(mode)
        .arg("-3")
        .arg(sshd.remote(&copy))
        .arg(sshd.remote(&dir)));
    assert_success(&out);
    assert_eq!(
        fs::read(dir.join("copy")).unwrap(),
        fs::read(&data).unwrap()
    );

    let source = work.path().join("forest");
    forest(&source);
    let into = work.path().join("dir2");
    let out = run(sshd
        .rscp()
        .args(mode)
        .arg("-3r")
        .arg(sshd.remote(&source))
        .arg(sshd.remote(&into)));
    assert_success(&out);
    assert_same_followed(&source, &into);
}

#[test]
fn through_this_host_files_directories_and_forests() {
    through_this_host_files_directories_and_forests_in(&[]);
}

/// The same steps in SFTP mode (scp3.sh's sftp half).
#[test]
fn through_this_host_files_directories_and_forests_over_sftp() {
    through_this_host_files_directories_and_forests_in(&["-s"]);
}

/// A config that reaches the fixture without a Port or User of its own,
/// so that only an scp:// URI can supply them (as scp-uri.sh does).
fn config_without_port(sshd: &Sshd) -> PathBuf {
    let text = fs::read_to_string(sshd.ssh_config()).unwrap();
    let kept: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("Port"))
        .map(|l| format!("{l}\n"))
        .collect();
    let path = sshd.dir.path().join("ssh_config_no_port");
    fs::write(&path, kept).unwrap();
    path
}

// scp-uri.sh: a file up to a URI, down from one, into a URI directory,
// from a URI into a local directory, and -r both ways.
fn scp_uris_carry_user_port_and_absolute_paths_in(mode: &[&str]) {
    let Some(sshd) = Sshd::start() else { return };
    let config = config_without_port(&sshd);
    let uri = |path: &Path| {
        format!(
            "scp://{}@127.0.0.1:{}/{}",
            whoami(),
            sshd.port,
            path.display()
        )
    };
    let copy_with = |args: &[&str]| {
        let out = run(rscp().args(mode).arg("-F").arg(&config).args(args));
        assert_success(&out);
        assert_eq!(stderr(&out), "", "{args:?}");
    };
    // The URI's port is the only way in.
    let out = run(rscp()
        .args(mode)
        .arg("-F")
        .arg(&config)
        .arg("-oConnectTimeout=5")
        .arg("/dev/null")
        .arg(format!("127.0.0.1:{}", sshd.dir.path().join("x").display())));
    assert_exit(&out, 1);

    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    write(&data, &pattern(200_000, 35));
    let expected = fs::read(&data).unwrap();
    let s = |p: &Path| p.display().to_string();

    let copy = work.path().join("copy");
    copy_with(&[&s(&data), &uri(&copy)]);
    assert_eq!(fs::read(&copy).unwrap(), expected);
    let back = work.path().join("back");
    copy_with(&[&uri(&copy), &s(&back)]);
    assert_eq!(fs::read(&back).unwrap(), expected);

    let dir = work.path().join("dir");
    fs::create_dir(&dir).unwrap();
    copy_with(&[&s(&data), &uri(&dir)]);
    assert_eq!(fs::read(dir.join("data")).unwrap(), expected);
    let local_dir = work.path().join("local-dir");
    fs::create_dir(&local_dir).unwrap();
    copy_with(&[&uri(&copy), &s(&local_dir)]);
    assert_eq!(fs::read(local_dir.join("copy")).unwrap(), expected);

    let tree = work.path().join("tree");
    sample_tree(&tree);
    let up = work.path().join("tree-up");
    copy_with(&["-r", &s(&tree), &uri(&up)]);
    assert_same_tree(&tree, &up);
    let down = work.path().join("tree-down");
    copy_with(&["-r", &uri(&up), &s(&down)]);
    assert_same_tree(&tree, &down);
}

#[test]
fn scp_uris_carry_user_port_and_absolute_paths() {
    scp_uris_carry_user_port_and_absolute_paths_in(&[]);
}

/// The same step in SFTP mode (their sftp half: `-s`).
#[test]
fn scp_uris_carry_user_port_and_absolute_paths_over_sftp() {
    scp_uris_carry_user_port_and_absolute_paths_in(&["-s"]);
}

/// An ssh for `-S` whose remote side, asked to send (`scp -f`), writes
/// `records` at once, as a hostile server would, without waiting for the
/// go-ahead; asked to receive, it runs the real command.
fn bad_server(dir: &Path, records: &[u8]) -> PathBuf {
    let stream = dir.join("records");
    fs::write(&stream, records).unwrap();
    let program = dir.join("bad-ssh");
    fs::write(
        &program,
        format!(
            "#!/bin/bash\n\
             last=\"${{@: -1}}\"\n\
             case \"$last\" in\n\
               *' -f '*) cat '{}'; exec cat >/dev/null ;;\n\
               *) exec sh -c \"$last\" ;;\n\
             esac\n",
            stream.display()
        ),
    )
    .unwrap();
    chmod(&program, 0o755);
    program
}

// scp.sh: "disallow bad server" — eight sets of hostile records, each
// against four command lines. Nothing may be created outside the target,
// the target's own mode must not change, and no unrequested file may
// arrive.
#[test]
fn a_bad_server_gets_nothing_past_the_target() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("dir");
    let dir2 = work.path().join("dir2");
    let dots = "../".repeat(13);
    let dir_parts: String = dir
        .iter()
        .skip(1)
        .map(|part| format!("D0755 0 {}\n", part.to_string_lossy()))
        .collect();
    let sets: Vec<Vec<u8>> = vec![
        format!(
            "D0755 0 {}/rootpathdir\nC0644 5 rootpathfile\nhello",
            dir.display()
        )
        .into(),
        format!(
            "D0755 0 {dots}{}/dotpathdir\n",
            dir.display().to_string().trim_start_matches('/')
        )
        .into(),
        format!(
            "D0755 0 ../{}/dotpathdir\n",
            dir.file_name().unwrap().to_string_lossy()
        )
        .into(),
        format!(
            "{}{dir_parts}D0755 0 dotpathdir\n",
            "D0755 0 ..\n".repeat(13)
        )
        .into(),
        format!(
            "{}{dir_parts}D0755 0 dotpathdir\nD0755 0 ..\n",
            "D0755 0 ..\n".repeat(13)
        )
        .into(),
        b"D0555 0 \n".to_vec(),
        b"D0555 0 .\n".to_vec(),
        b"C0755 2 extrafile\nhi\0".to_vec(),
    ];
    for (n, set) in sets.iter().enumerate() {
        let mut records = set.clone();
        records.extend_from_slice(b"\nX\n");
        let program = bad_server(work.path(), &records);
        let data = dir.join("data");
        let lines: [(&[&str], String, &Path); 4] = [
            (&[], format!("host:{}", data.display()), &dir),
            (&["-r"], format!("host:{}", data.display()), &dir2),
            (&["-pr"], format!("host:{}", data.display()), &dir2),
            (&[], format!("host:{}/data", dir.display()), &dir2),
        ];
        for (flags, source, target) in lines {
            let _ = fs::remove_dir_all(&dir);
            let _ = fs::remove_dir_all(&dir2);
            fs::create_dir(&dir).unwrap();
            fs::create_dir(&dir2).unwrap();
            write(&data, b"data");
            let out = run(rscp()
                .arg("-S")
                .arg(&program)
                .args(flags)
                .arg(&source)
                .arg(target));
            let case = format!("set {n}, {flags:?} {source} {}", target.display());
            assert_exit(&out, 1);
            assert!(
                stderr(&out).starts_with("rscp: "),
                "{case}: {}",
                stderr(&out)
            );
            for name in ["rootpathdir", "rootpathfile", "dotpathdir"] {
                assert!(!dir.join(name).exists(), "{case}: {name} created");
            }
            assert!(!work.path().join("dotpathdir").exists(), "{case}");
            assert_eq!(mode(&dir2), mode(&dir), "{case}: the target's mode changed");
            assert!(
                !dir2.join("extrafile").exists(),
                "{case}: extrafile arrived"
            );
            assert!(
                !target.join("extrafile").exists(),
                "{case}: extrafile arrived"
            );
        }
    }
}

// scp.sh (sftp half, and legacy scp's refusal): `..` as a source. rscp
// sends the directory under its real name (a README difference); asked
// for `..` from a remote scp, which sends the name `..`, it refuses it.
#[test]
fn dot_dot_sources() {
    let Some(sshd) = Sshd::start() else { return };
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("x");
    sample_tree(&tree);
    let dst = work.path().join("dst");
    let out = run(sshd
        .rscp()
        .arg("-r")
        .arg(tree.join("sub/.."))
        .arg(sshd.remote(&dst)));
    assert_success(&out);
    assert_same_tree(&tree, &dst);

    let down = work.path().join("down");
    let out = run(sshd
        .rscp()
        .arg("-r")
        .arg(sshd.remote(tree.join("sub/..")))
        .arg(&down));
    assert_exit(&out, 1);
    assert_eq!(
        stderr(&out),
        "rscp: protocol error: unexpected filename: ..\n"
    );
    assert!(!down.exists());
}

// scp.sh (with sudo): a -p download where one file's mode and times
// cannot be set (it belongs to another user): that file's data still
// arrives, the error is reported, and the stream stays in step for the
// next file.
#[test]
fn a_p_download_whose_metadata_cannot_be_set_stays_in_step() {
    use std::os::unix::process::CommandExt;
    let Some(sshd) = Sshd::start() else { return };
    let Some(user) = TestUser::create() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    chmod(work.path(), 0o755);
    let remote = work.path().join("remote");
    write(remote.join("copy"), &pattern(50_000, 36));
    write(remote.join("other"), &pattern(60_000, 37));
    // What the user's rscp needs to reach the fixture, readable by it.
    let setup = user.home.join("setup");
    fs::create_dir(&setup).unwrap();
    for file in ["client_key", "known_hosts"] {
        fs::copy(sshd.dir.path().join(file), setup.join(file)).unwrap();
    }
    let config = fs::read_to_string(sshd.ssh_config()).unwrap().replace(
        &sshd.dir.path().display().to_string(),
        &setup.display().to_string(),
    );
    fs::write(setup.join("ssh_config"), config).unwrap();
    let into = user.home.join("into");
    fs::create_dir(&into).unwrap();
    // The first file exists, writable by all but owned by root: its mode
    // and times are not the user's to set.
    write(into.join("copy"), b"old");
    chmod(into.join("copy"), 0o666);
    let chown = std::process::Command::new("chown")
        .arg("-R")
        .arg(format!("{}:", user.name))
        .arg(&setup)
        .arg(&into)
        .status()
        .unwrap();
    assert!(chown.success());
    let root_owned = std::process::Command::new("chown")
        .arg("root:root")
        .arg(into.join("copy"))
        .status()
        .unwrap();
    assert!(root_owned.success());
    let account = nix::unistd::User::from_name(&user.name).unwrap().unwrap();
    let out = run(rscp()
        .uid(account.uid.as_raw())
        .gid(account.gid.as_raw())
        .env("HOME", &user.home)
        .arg("-F")
        .arg(setup.join("ssh_config"))
        .arg("-p")
        .arg(format!("root@127.0.0.1:{}/*", remote.display()))
        .arg(&into));
    assert_exit(&out, 1);
    assert_eq!(
        stderr(&out),
        format!(
            "rscp: {}: set mode: Operation not permitted\n",
            into.join("copy").display()
        )
    );
    assert_eq!(
        fs::read(into.join("copy")).unwrap(),
        fs::read(remote.join("copy")).unwrap()
    );
    assert_eq!(
        fs::read(into.join("other")).unwrap(),
        fs::read(remote.join("other")).unwrap()
    );
    assert_eq!(mtime(into.join("other")), mtime(remote.join("other")));
}
