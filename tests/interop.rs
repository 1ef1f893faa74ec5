//! OpenSSH's scp as the client, rscp as the server: `scp -O -S <wrapper>`
//! reaches the fixture sshd, where the remote `scp` is rscp (a symlink named
//! `scp`, as on a server that installed rscp in place of scp).

mod common;

use std::fs;

use common::*;

#[test]
fn openssh_scp_uploads_a_tree_to_rscp() {
    let Some(sshd) = Sshd::start() else { return };
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    sample_tree(&tree);
    chmod(tree.join("sub"), 0o751);
    for (i, rel) in listing(&tree).iter().rev().enumerate() {
        set_times(
            tree.join(rel),
            1_200_000_000 + i as i64,
            1_300_000_000 + i as i64,
        );
    }
    fs::create_dir(work.path().join("up")).unwrap();

    let up = run(sshd
        .openssh_scp()
        .arg("-S")
        .arg(sshd.rscp_as_remote_scp_wrapper())
        .arg("-r")
        .arg("-p")
        .arg(&tree)
        .arg(sshd.remote(work.path().join("up"))));
    assert_success(&up);
    assert_eq!(stderr(&up), "");
    assert_same_tree(&tree, &work.path().join("up/tree"));
    assert_same_metadata(&tree, &work.path().join("up/tree"), true);
}

#[test]
fn openssh_scp_downloads_a_tree_from_rscp() {
    let Some(sshd) = Sshd::start() else { return };
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    sample_tree(&tree);
    for (i, rel) in listing(&tree).iter().rev().enumerate() {
        set_times(
            tree.join(rel),
            1_250_000_000 + i as i64,
            1_350_000_000 + i as i64,
        );
    }
    set_times(&tree, 1_249_999_999, 1_249_999_999);

    let down = run(sshd
        .openssh_scp()
        .arg("-S")
        .arg(sshd.rscp_as_remote_scp_wrapper())
        .arg("-rp")
        .arg(sshd.remote(&tree))
        .arg(work.path().join("down")));
    assert_success(&down);
    assert_eq!(stderr(&down), "");
    assert_same_tree(&tree, &work.path().join("down"));
    assert_same_metadata(&tree, &work.path().join("down"), true);
}

#[test]
fn openssh_scp_single_files_both_ways() {
    let Some(sshd) = Sshd::start() else { return };
    let work = tempfile::tempdir().unwrap();
    let data = pattern(5_000_001, 21);
    write(work.path().join("one.bin"), &data);
    let wrapper = sshd.rscp_as_remote_scp_wrapper();

    let up = run(sshd
        .openssh_scp()
        .arg("-S")
        .arg(&wrapper)
        .arg(work.path().join("one.bin"))
        .arg(sshd.remote(work.path().join("copy.bin"))));
    assert_success(&up);
    assert!(fs::read(work.path().join("copy.bin")).unwrap() == data);

    let down = run(sshd
        .openssh_scp()
        .arg("-S")
        .arg(&wrapper)
        .arg(sshd.remote(work.path().join("copy.bin")))
        .arg(work.path().join("back.bin")));
    assert_success(&down);
    assert!(fs::read(work.path().join("back.bin")).unwrap() == data);
}

#[test]
fn rscp_server_errors_reach_openssh_scp() {
    let Some(sshd) = Sshd::start() else { return };
    let work = tempfile::tempdir().unwrap();
    write(work.path().join("present"), b"here");
    fs::create_dir(work.path().join("down")).unwrap();
    let wrapper = sshd.rscp_as_remote_scp_wrapper();

    // A missing file among two: OpenSSH prints rscp's message, copies the
    // other, and exits 1.
    let down = run(sshd
        .openssh_scp()
        .arg("-S")
        .arg(&wrapper)
        .arg(sshd.remote(format!(
            "{{{},{}}}",
            work.path().join("missing").display(),
            work.path().join("present").display()
        )))
        .arg(work.path().join("down")));
    assert_exit(&down, 1);
    assert_eq!(
        stderr(&down),
        format!(
            "rscp: {}: No such file or directory\n",
            work.path().join("missing").display()
        )
    );
    assert_eq!(fs::read(work.path().join("down/present")).unwrap(), b"here");

    // Uploading several files to a target that is not a directory: rscp -t
    // -d refuses before anything is written.
    let up = run(sshd
        .openssh_scp()
        .arg("-S")
        .arg(&wrapper)
        .arg(work.path().join("present"))
        .arg(work.path().join("present"))
        .arg(sshd.remote(work.path().join("present"))));
    assert_exit(&up, 1);
    assert_eq!(
        stderr(&up),
        format!(
            "rscp: {}: Not a directory\n",
            work.path().join("present").display()
        )
    );
    assert_eq!(fs::read(work.path().join("present")).unwrap(), b"here");
}

#[test]
fn rscp_client_with_rscp_server() {
    let Some(sshd) = Sshd::start() else { return };
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    sample_tree(&tree);
    let wrapper = sshd.rscp_as_remote_scp_wrapper();

    let up = run(rscp()
        .arg("-S")
        .arg(&wrapper)
        .arg("-rp")
        .arg(&tree)
        .arg(sshd.remote(work.path().join("up"))));
    assert_success(&up);
    assert_same_tree(&tree, &work.path().join("up"));
    assert_same_metadata(&tree, &work.path().join("up"), true);

    let down = run(rscp()
        .arg("-S")
        .arg(&wrapper)
        .arg("-r")
        .arg(sshd.remote(work.path().join("up")))
        .arg(work.path().join("down")));
    assert_success(&down);
    assert_same_tree(&tree, &work.path().join("down"));
}
