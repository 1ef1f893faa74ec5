//! Local-to-local copies: done by rscp's own engine, never through a shell
//! or `cp`, with scp's semantics and error rules.

mod common;

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use common::*;

#[test]
fn file_to_file_and_into_a_directory() {
    let work = tempfile::tempdir().unwrap();
    let data = pattern(2_000_003, 1);
    write(work.path().join("src.bin"), &data);
    fs::create_dir(work.path().join("dir")).unwrap();

    let out = run(rscp()
        .arg(work.path().join("src.bin"))
        .arg(work.path().join("copy.bin")));
    assert_success(&out);
    assert_eq!(stderr(&out), "");
    assert!(fs::read(work.path().join("copy.bin")).unwrap() == data);

    let out = run(rscp()
        .arg(work.path().join("src.bin"))
        .arg(work.path().join("dir")));
    assert_success(&out);
    assert!(fs::read(work.path().join("dir/src.bin")).unwrap() == data);
}

#[test]
fn trees_with_r_and_p() {
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    sample_tree(&tree);
    chmod(tree.join("sub"), 0o705);
    for (i, rel) in listing(&tree).iter().rev().enumerate() {
        set_times(
            tree.join(rel),
            1_100_000_000 + i as i64,
            1_100_000_500 + i as i64,
        );
    }
    set_times(&tree, 1_099_999_999, 1_099_999_999);

    // A new target becomes the copy.
    let out = run(rscp().arg("-rp").arg(&tree).arg(work.path().join("copy")));
    assert_success(&out);
    assert_same_tree(&tree, &work.path().join("copy"));
    assert_same_metadata(&tree, &work.path().join("copy"), true);

    // An existing directory receives it.
    fs::create_dir(work.path().join("into")).unwrap();
    let out = run(rscp().arg("-r").arg(&tree).arg(work.path().join("into")));
    assert_success(&out);
    assert_same_tree(&tree, &work.path().join("into/tree"));
}

#[test]
fn missing_source_and_directory_without_r() {
    let work = tempfile::tempdir().unwrap();
    write(work.path().join("one"), b"1");
    fs::create_dir(work.path().join("adir")).unwrap();
    fs::create_dir(work.path().join("dest")).unwrap();

    let out = run(rscp()
        .arg(work.path().join("missing"))
        .arg(work.path().join("adir"))
        .arg(work.path().join("one"))
        .arg(work.path().join("dest")));
    assert_exit(&out, 1);
    assert_eq!(
        stderr(&out),
        format!(
            "rscp: {}: No such file or directory\nrscp: {}: not a regular file\n",
            work.path().join("missing").display(),
            work.path().join("adir").display()
        ),
        "each problem once"
    );
    assert_eq!(
        listing(&work.path().join("dest")),
        vec![PathBuf::from("one")]
    );
}

#[test]
fn several_sources_need_a_directory() {
    let work = tempfile::tempdir().unwrap();
    write(work.path().join("a"), b"a");
    write(work.path().join("b"), b"b");
    let out = run(rscp()
        .arg(work.path().join("a"))
        .arg(work.path().join("b"))
        .arg(work.path().join("nodir")));
    assert_exit(&out, 1);
    assert_eq!(
        stderr(&out),
        format!(
            "rscp: {}: No such file or directory\n",
            work.path().join("nodir").display()
        )
    );
    assert!(!work.path().join("nodir").exists());
}

#[test]
fn shell_metacharacters_are_just_names() {
    let work = tempfile::tempdir().unwrap();
    let names = [
        "$(touch pwned1)",
        "; touch pwned2",
        "`touch pwned3`",
        "a'b\"c",
        "| tee x",
    ];
    for name in names {
        write(work.path().join("src").join(name), name.as_bytes());
    }
    fs::create_dir(work.path().join("dest")).unwrap();
    let mut command = rscp();
    for name in names {
        command.arg(work.path().join("src").join(name));
    }
    let out = run(command
        .arg(work.path().join("dest"))
        .current_dir(work.path()));
    assert_success(&out);
    assert_same_tree(&work.path().join("src"), &work.path().join("dest"));
    for pwned in ["pwned1", "pwned2", "pwned3"] {
        assert!(!work.path().join(pwned).exists());
        assert!(!work.path().join("src").join(pwned).exists());
    }
}

#[test]
fn a_leading_dash_after_double_dash() {
    let work = tempfile::tempdir().unwrap();
    write(work.path().join("-file"), b"dash");
    let out = run(rscp()
        .current_dir(work.path())
        .arg("--")
        .arg("-file")
        .arg("copy"));
    assert_success(&out);
    assert_eq!(fs::read(work.path().join("copy")).unwrap(), b"dash");
}

#[test]
fn dot_is_copied_under_its_real_name() {
    let work = tempfile::tempdir().unwrap();
    sample_tree(&work.path().join("project"));
    let out = run(rscp()
        .current_dir(work.path().join("project"))
        .args(["-r", ".", "../copy"]));
    assert_success(&out);
    assert_same_tree(&work.path().join("project"), &work.path().join("copy"));
    fs::create_dir(work.path().join("into")).unwrap();
    let out = run(rscp()
        .current_dir(work.path().join("project"))
        .args(["-r", ".", "../into"]));
    assert_success(&out);
    assert_same_tree(
        &work.path().join("project"),
        &work.path().join("into/project"),
    );
}

#[test]
fn dash_d_requires_a_directory_target() {
    let work = tempfile::tempdir().unwrap();
    write(work.path().join("f"), b"f");
    let out = run(rscp()
        .arg("-d")
        .arg(work.path().join("f"))
        .arg(work.path().join("g")));
    assert_exit(&out, 1);
    assert_eq!(
        stderr(&out),
        format!(
            "rscp: {}: No such file or directory\n",
            work.path().join("g").display()
        )
    );
    assert!(!work.path().join("g").exists());
}

#[test]
fn copying_a_directory_into_itself_is_refused() {
    let work = tempfile::tempdir().unwrap();
    write(work.path().join("d/f"), b"f");
    fs::create_dir(work.path().join("d/sub")).unwrap();
    let out = run(rscp()
        .current_dir(work.path())
        .arg("-r")
        .arg("d")
        .arg("d/sub"));
    assert_exit(&out, 1);
    assert_eq!(
        stderr(&out),
        "rscp: cannot copy a directory, 'd', into itself, 'd/sub/d'\n"
    );
    assert_eq!(
        listing(&work.path().join("d")),
        vec![PathBuf::from("f"), "sub".into()]
    );
}

#[test]
fn a_file_onto_itself_is_left_intact() {
    let work = tempfile::tempdir().unwrap();
    let data = pattern(1_500_000, 3);
    write(work.path().join("f"), &data);
    let out = run(rscp().arg(work.path().join("f")).arg(work.path().join("f")));
    assert_success(&out);
    assert!(fs::read(work.path().join("f")).unwrap() == data);
}

#[test]
fn symlink_loops_are_not_followed_forever() {
    let work = tempfile::tempdir().unwrap();
    write(work.path().join("d/f"), b"f");
    write(work.path().join("d/sub/g"), b"g");
    std::os::unix::fs::symlink("..", work.path().join("d/sub/back")).unwrap();
    let out = run(rscp()
        .current_dir(work.path())
        .arg("-r")
        .arg("d")
        .arg("copy"));
    assert_exit(&out, 1);
    assert_eq!(
        stderr(&out),
        "rscp: d/sub/back: directory loop (symbolic link to a parent)\n"
    );
    assert_eq!(fs::read(work.path().join("copy/f")).unwrap(), b"f");
    assert_eq!(fs::read(work.path().join("copy/sub/g")).unwrap(), b"g");
    assert!(!work.path().join("copy/sub/back").exists());
}

#[test]
fn unreadable_files_and_fifos_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let fifo = work.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let out = run(rscp().arg(&fifo).arg(work.path().join("copy")));
    assert_exit(&out, 1);
    assert_eq!(
        stderr(&out),
        format!("rscp: {}: not a regular file\n", fifo.display())
    );
    assert!(!work.path().join("copy").exists());
}

/// A file that reads shorter than its size (sysfs files claim 4096 bytes)
/// is padded with zeros to keep the stream in step, and reported.
#[test]
fn a_file_shorter_than_its_size_is_padded_and_reported() {
    let short = std::path::Path::new("/sys/devices/system/cpu/online");
    let claimed = fs::metadata(short).expect("sysfs file").len();
    let actual = fs::read(short).unwrap();
    assert!(
        actual.len() < claimed as usize,
        "needs a file that reads short"
    );
    let work = tempfile::tempdir().unwrap();
    write(work.path().join("after"), b"after");
    fs::create_dir(work.path().join("dest")).unwrap();

    let out = run(rscp()
        .arg(short)
        .arg(work.path().join("after"))
        .arg(work.path().join("dest")));
    assert_exit(&out, 1);
    assert_eq!(
        stderr(&out),
        format!("rscp: {}: file shrank while being read\n", short.display())
    );
    let copy = fs::read(work.path().join("dest/online")).unwrap();
    assert_eq!(copy.len() as u64, claimed);
    assert_eq!(&copy[..actual.len()], &actual[..]);
    assert!(copy[actual.len()..].iter().all(|&b| b == 0));
    assert_eq!(fs::read(work.path().join("dest/after")).unwrap(), b"after");
}

/// Sizes past 32 bits survive, and a sparse source stays sparse.
#[test]
fn a_sparse_file_above_4_gib_round_trips() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("sparse");
    let size: u64 = (4 << 30) + (1 << 20) + 7;
    let marks: [(u64, &[u8]); 3] = [
        (0, b"start"),
        ((4 << 30) - 3, b"across-4GiB"),
        (size - 4, b"end!"),
    ];
    {
        let mut file = fs::File::create(&source).unwrap();
        file.set_len(size).unwrap();
        for (offset, mark) in marks {
            file.seek(SeekFrom::Start(offset)).unwrap();
            file.write_all(mark).unwrap();
        }
    }
    let out = run(rscp().arg("-p").arg(&source).arg(work.path().join("copy")));
    assert_success(&out);
    let copy = work.path().join("copy");
    let meta = fs::metadata(&copy).unwrap();
    assert_eq!(meta.len(), size);
    let mut file = fs::File::open(&copy).unwrap();
    for (offset, mark) in marks {
        let mut got = vec![0; mark.len()];
        file.seek(SeekFrom::Start(offset)).unwrap();
        file.read_exact(&mut got).unwrap();
        assert_eq!(got, mark, "at offset {offset}");
    }
    // Everything else is zero; blocks on disk show holes were kept.
    use std::os::unix::fs::MetadataExt;
    assert!(
        meta.blocks() * 512 < 64 << 20,
        "copy is not sparse: {} blocks",
        meta.blocks()
    );
    let mut zeros_checked = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    file.seek(SeekFrom::Start(1 << 20)).unwrap();
    while zeros_checked < (64 << 20) {
        file.read_exact(&mut buf).unwrap();
        assert!(buf.iter().all(|&b| b == 0));
        zeros_checked += buf.len() as u64;
    }
    assert_eq!(mtime(&copy), mtime(&source));
}
