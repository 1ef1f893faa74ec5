//! The fuzz targets' bodies (`fuzz/`, cargo-fuzz), here so that the seeds
//! in `fuzz/seeds/` also run as ordinary tests on stable
//! (`tests/fuzz_seeds.rs`). Each takes arbitrary bytes and must neither
//! panic nor break the property it checks.

use std::path::{Path, PathBuf};

use crate::config::{self, Request};
use crate::events::NoEvents;
use crate::scp::{NameFilter, Sink, SinkOptions, record};
use crate::transport::ssh::known_hosts::{self, KnownHosts};

/// The SCP record parser: whatever parses formats back to the same record
/// (but for the sticky bit, which never travels), and a received name is
/// one safe path component.
pub fn record(data: &[u8]) {
    use record::Record;
    let Ok(parsed) = record::parse(data) else {
        return;
    };
    let (line, expected) = match parsed {
        Record::File { mode, size, name } => (
            record::file_line(mode, size, &name),
            Record::File {
                mode: mode & record::MODE_MASK,
                size,
                name,
            },
        ),
        Record::Directory { mode, name } => (
            record::directory_line(mode, &name),
            Record::Directory {
                mode: mode & record::MODE_MASK,
                name,
            },
        ),
        Record::Times(_) | Record::End => return,
    };
    let (Record::File { name, .. } | Record::Directory { name, .. }) = &expected else {
        return;
    };
    assert!(!name.is_empty() && name != b"." && name != b"..");
    assert!(!name.contains(&b'/') && !name.contains(&0));
    if !name.contains(&b'\n') {
        let line = line.strip_suffix(b"\n").unwrap_or(&line);
        assert_eq!(record::parse(line), Ok(expected.clone()));
    }
}

/// Strict filename checking: a request (the bytes before the first NUL)
/// against a name (the rest). A name is never allowed where nothing in
/// the request could stand for a leading dot.
pub fn names(data: &[u8]) {
    let (request, name) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &b"x"[..]),
    };
    let filter = NameFilter::for_request(request);
    for directory in [false, true] {
        let allowed = filter.allows(name, directory);
        // Only a `.`, a `$`, a backquote, a `~` or an escape in the request
        // can bring a hidden name.
        if allowed && name.first() == Some(&b'.') {
            assert!(
                request.iter().any(|b| b".$`~\\'\"".contains(b)),
                "hidden {name:?} allowed for {request:?}"
            );
        }
    }
}

/// The ssh_config reader on one file's text, sandboxed (nothing is run,
/// nothing else is read); the settings come out or an error does.
pub fn ssh_config(data: &[u8]) {
    let request = Request {
        host: "fuzz.example".into(),
        local_user: "fuzzer".into(),
        home: "/nonexistent".into(),
        ..Request::default()
    };
    if let Ok(settings) = config::resolve_text(&request, data) {
        assert!(settings.connection_attempts >= 1);
        assert!(settings.port >= 1);
    }
}

/// known_hosts as read from a file, then looked up as a connection would.
pub fn known_hosts(data: &[u8]) {
    let mut known = KnownHosts::default();
    known.add(data, Path::new("known_hosts"));
    let key = russh::keys::ssh_key::PublicKey::from_openssh(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBXYjZf5mLRBWrDC6leU4slu/+uAr+z8nCgLeCmbtsC3",
    );
    for (host, port) in [("fuzz.example", 22), ("127.0.0.1", 2222)] {
        let name = known_hosts::lookup_name(host, port, None);
        let fallback = known_hosts::fallback_name(host, port, None);
        let _ = known.known_algorithms(&name);
        let _ = known.has_authority_for(&name);
        if let Ok(key) = &key {
            let _ = known.check_with_fallback(&name, fallback.as_deref(), key);
        }
    }
}

/// A sink receiving `data` (after a first byte of options) as the source's
/// stream into a scratch directory: nothing may land outside it.
pub fn sink(data: &[u8]) {
    let Some((&options, stream)) = data.split_first() else {
        return;
    };
    let sink_options = SinkOptions {
        recursive: options & 1 != 0,
        preserve: options & 2 != 0,
        target_must_be_directory: options & 8 != 0,
        umask: 0o022,
        filter: (options & 16 != 0).then(|| NameFilter::for_request(b"/remote/*")),
        limit: None,
        replies_ahead: if options & 32 != 0 { 64 } else { 0 },
    };
    within_scratch(options & 4 != 0, async |root| {
        let sink = Sink::new(stream, tokio::io::sink(), sink_options, &NoEvents);
        let _ = sink.run(root).await;
    });
}

/// Runs `receive` with a target in a fresh scratch directory (the target
/// an existing directory if `target_exists`, else a name to create), then
/// asserts that nothing was written outside the target.
fn within_scratch(target_exists: bool, receive: impl AsyncFnOnce(&Path)) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let scratch = std::env::temp_dir().join(format!(
        "rscp-fuzz-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    if std::fs::create_dir(&scratch).is_err() {
        return;
    }
    let root = scratch.join("target");
    if (!target_exists || std::fs::create_dir(&root).is_ok())
        && let Ok(runtime) = tokio::runtime::Builder::new_current_thread().build()
    {
        runtime.block_on(receive(&root));
    }
    let written = everything_under(&scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    for path in written {
        assert!(
            path.starts_with(&root),
            "{} written outside {}",
            path.display(),
            root.display()
        );
    }
}

/// The SFTP codec: any reply, version or limits packet either decodes or
/// is refused; a DATA reply's data lies within its packet, and a NAME
/// reply holds no more entries than its packet has room for.
pub fn sftp_codec(data: &[u8]) {
    use crate::sftp::codec::{self, Reply};
    let packet = bytes::Bytes::copy_from_slice(data);
    if let Ok((_, reply)) = codec::decode_reply(&packet) {
        match reply {
            Reply::Data(bytes) => assert!(bytes.len() + 9 <= data.len()),
            Reply::Name(entries) => assert!(entries.len() * 12 <= data.len()),
            _ => {}
        }
    }
    let _ = codec::decode_version(data);
    let _ = codec::decode_limits(data);
}

/// An SFTP download whose server says `data` (after a first byte of
/// options), into a scratch directory: nothing may land outside it.
pub fn sftp_download(data: &[u8]) {
    let Some((&options, stream)) = data.split_first() else {
        return;
    };
    let sftp_options = crate::sftp::SftpOptions {
        recursive: options & 1 != 0,
        preserve: options & 2 != 0,
        limit: None,
        buffer: None,
        requests: usize::from(options >> 4) + 1,
        umask: 0o022,
    };
    let request: &[u8] = if options & 8 != 0 { b"/r/*" } else { b"/r" };
    within_scratch(options & 4 != 0, async |root| {
        let started =
            crate::sftp::Sftp::start(stream, tokio::io::sink(), sftp_options, &NoEvents).await;
        if let Ok(mut sftp) = started {
            let _ = sftp.download(request, root).await;
        }
    });
}

/// Every path below `dir`; directories are made readable first (the
/// stream may have given them any mode).
fn everything_under(dir: &Path) -> Vec<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(path.clone());
            }
            found.push(path);
        }
    }
    found
}
