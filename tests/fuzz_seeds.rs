//! The fuzz targets' seeds (and every crash input kept beside them, in
//! `fuzz/seeds/<target>/`), replayed on stable, so that CI runs them.

use std::fs;
use std::path::Path;

fn replay(target: &str, body: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut count = 0;
    for entry in fs::read_dir(&dir).expect("seed directory") {
        let path = entry.expect("seed").path();
        let data = fs::read(&path).expect("read seed");
        let outcome = std::panic::catch_unwind(|| body(&data));
        assert!(outcome.is_ok(), "{target}: seed {} fails", path.display());
        count += 1;
    }
    assert!(count > 0, "{target}: no seeds in {}", dir.display());
}

#[test]
fn record_seeds() {
    replay("record", rscp::fuzz::record);
}

#[test]
fn names_seeds() {
    replay("names", rscp::fuzz::names);
}

#[test]
fn ssh_config_seeds() {
    replay("ssh_config", rscp::fuzz::ssh_config);
}

#[test]
fn known_hosts_seeds() {
    replay("known_hosts", rscp::fuzz::known_hosts);
}

#[test]
fn sink_seeds() {
    replay("sink", rscp::fuzz::sink);
}

#[test]
fn sftp_codec_seeds() {
    replay("sftp_codec", rscp::fuzz::sftp_codec);
}

#[test]
fn sftp_download_seeds() {
    replay("sftp_download", rscp::fuzz::sftp_download);
}
