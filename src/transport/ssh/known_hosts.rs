//! known_hosts files as OpenSSH reads and writes them: plain and hashed
//! names, `[host]:port`, comma lists with wildcards and `!` negation,
//! `@revoked` and `@cert-authority` markers, several files.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use data_encoding::BASE64;
use hmac::{Hmac, KeyInit, Mac};
use russh::keys::ssh_key::{Algorithm, Certificate, PublicKey, certificate::CertType};
use sha1::Sha1;

use crate::config::pattern::{ListMatch, match_list};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
    CertAuthority,
}

#[derive(Debug, Clone)]
struct Entry {
    marker: Marker,
    /// The host field as written (comma-separated patterns or one hash).
    hosts: String,
    key: PublicKey,
    file: PathBuf,
    line: usize,
}

/// Where a known key came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub file: PathBuf,
    pub line: usize,
    /// The key type of the entry, as ssh names it ("ED25519").
    pub key_type: String,
}

/// What the files say about a host's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// A key for this host matches.
    Known,
    /// The key is listed as revoked.
    Revoked,
    /// The host is known with another key.
    Changed(Place),
    /// Nothing is known about this host.
    Unknown,
}

#[derive(Debug, Clone, Default)]
pub struct KnownHosts {
    entries: Vec<Entry>,
}

impl KnownHosts {
    /// Reads the files that exist, as bytes and line by line: a line that
    /// does not parse (or is not text) is skipped, never the file, as ssh
    /// reads them.
    pub fn load(files: &[PathBuf]) -> KnownHosts {
        let mut known = KnownHosts::default();
        for file in files {
            if let Ok(bytes) = fs::read(file) {
                known.add(&bytes, file);
            }
        }
        known
    }

    /// Adds the entries of one file's contents.
    pub fn add(&mut self, bytes: &[u8], file: &Path) {
        for (index, line) in crate::config::text_lines(bytes).enumerate() {
            if let Some(entry) = parse_line(&line, file, index + 1) {
                self.entries.push(entry);
            }
        }
    }

    /// The status of `key` for a host known as `name`, or, when nothing is
    /// known under that name, as `fallback` (ssh's second look, without the
    /// port): only a matching key counts there.
    pub fn check_with_fallback(
        &self,
        name: &str,
        fallback: Option<&str>,
        key: &PublicKey,
    ) -> Status {
        match (self.check(name, key), fallback) {
            (Status::Unknown, Some(fallback)) => match self.check(fallback, key) {
                status @ (Status::Known | Status::Revoked) => status,
                Status::Changed(_) | Status::Unknown => Status::Unknown,
            },
            (status, _) => status,
        }
    }

    /// The status of `key` for `name` (as from [`lookup_name`]).
    pub fn check(&self, name: &str, key: &PublicKey) -> Status {
        let for_host: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| host_matches(&e.hosts, name))
            .collect();
        let same = |e: &&&Entry| e.key.key_data() == key.key_data();
        if for_host
            .iter()
            .filter(|e| e.marker == Marker::Revoked)
            .any(|e| same(&e))
        {
            return Status::Revoked;
        }
        let plain: Vec<&&Entry> = for_host
            .iter()
            .filter(|e| e.marker == Marker::None)
            .collect();
        if plain.iter().any(same) {
            return Status::Known;
        }
        match plain.first() {
            Some(entry) => Status::Changed(Place {
                file: entry.file.clone(),
                line: entry.line,
                key_type: key_type_name(entry.key.algorithm()),
            }),
            None => Status::Unknown,
        }
    }

    /// Checks a host certificate against the `@cert-authority` keys for
    /// `name`: signed by one of them, a host certificate, valid now and
    /// for this name. `Err` says why not.
    pub fn check_certificate(
        &self,
        name: &str,
        principal: &str,
        cert: &Certificate,
    ) -> Result<(), String> {
        let authorities: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| e.marker == Marker::CertAuthority && host_matches(&e.hosts, name))
            .collect();
        if authorities.is_empty() {
            return Err("no certificate authority is known for this host".into());
        }
        let revoked = |data: &russh::keys::ssh_key::public::KeyData| {
            self.entries.iter().any(|e| {
                e.marker == Marker::Revoked
                    && host_matches(&e.hosts, name)
                    && e.key.key_data() == data
            })
        };
        if revoked(cert.signature_key()) || revoked(cert.public_key()) {
            return Err("the certificate authority is revoked".into());
        }
        if !authorities
            .iter()
            .any(|e| e.key.key_data() == cert.signature_key())
        {
            return Err("the certificate is not signed by a trusted authority".into());
        }
        if cert.cert_type() != CertType::Host {
            return Err("the certificate is not a host certificate".into());
        }
        let fingerprints: Vec<_> = authorities
            .iter()
            .map(|e| e.key.fingerprint(Default::default()))
            .collect();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        cert.validate_at(now, &fingerprints)
            .map_err(|e| format!("the certificate is not valid: {e}"))?;
        let principals = cert.valid_principals();
        if !principals.is_empty() && !principals.iter().any(|p| p.eq_ignore_ascii_case(principal)) {
            return Err(format!("the certificate is not valid for {principal}"));
        }
        Ok(())
    }

    /// Whether an `@cert-authority` line covers `name`.
    pub fn has_authority_for(&self, name: &str) -> bool {
        self.entries
            .iter()
            .any(|e| e.marker == Marker::CertAuthority && host_matches(&e.hosts, name))
    }

    /// The algorithms of the plain keys known for `name`, in file order,
    /// to prefer in the key exchange (so that the server's key is one
    /// that can be checked).
    pub fn known_algorithms(&self, name: &str) -> Vec<Algorithm> {
        let mut algorithms: Vec<Algorithm> = Vec::new();
        for entry in &self.entries {
            if entry.marker == Marker::None && host_matches(&entry.hosts, name) {
                let algorithm = entry.key.algorithm();
                if !algorithms.contains(&algorithm) {
                    algorithms.push(algorithm);
                }
            }
        }
        algorithms
    }
}

/// The name a host is known by: its HostKeyAlias, else `host` for port 22
/// and `[host]:port` otherwise; lowercase.
pub fn lookup_name(host: &str, port: u16, alias: Option<&str>) -> String {
    match alias {
        Some(alias) => alias.to_lowercase(),
        None if port == 22 => host.to_lowercase(),
        None => format!("[{}]:{}", host.to_lowercase(), port),
    }
}

/// The name ssh looks a host up by when nothing is known under
/// [`lookup_name`]: the host without its port (not with a HostKeyAlias).
pub fn fallback_name(host: &str, port: u16, alias: Option<&str>) -> Option<String> {
    (alias.is_none() && port != 22).then(|| host.to_lowercase())
}

/// ssh's names for key types in messages.
pub fn key_type_name(algorithm: Algorithm) -> String {
    match algorithm {
        Algorithm::Ed25519 => "ED25519".into(),
        Algorithm::Ecdsa { .. } => "ECDSA".into(),
        Algorithm::Rsa { .. } => "RSA".into(),
        Algorithm::Dsa => "DSA".into(),
        Algorithm::SkEd25519 => "ED25519-SK".into(),
        Algorithm::SkEcdsaSha2NistP256 => "ECDSA-SK".into(),
        other => other.as_str().to_uppercase(),
    }
}

/// Appends `key` for `name` to `file`, as ssh writes it (hashed when
/// `hash` is set), creating the file and its directory if needed.
pub fn learn(file: &Path, name: &str, key: &PublicKey, hash: bool) -> std::io::Result<()> {
    if let Some(parent) = file.parent()
        && !parent.as_os_str().is_empty()
        && !parent.exists()
    {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    let host_field = if hash {
        hashed_name(name)?
    } else {
        name.to_owned()
    };
    let mut public = key.clone();
    public.set_comment("");
    let key_text = public.to_openssh().map_err(std::io::Error::other)?;
    let mut out = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .open(file)?;
    // Start on a line of our own even if the file lacks a final newline.
    let needs_newline = fs::read(file).is_ok_and(|bytes| bytes.last().is_some_and(|&b| b != b'\n'));
    let mut line = String::new();
    if needs_newline {
        line.push('\n');
    }
    line.push_str(&format!("{host_field} {}\n", key_text.trim_end()));
    out.write_all(line.as_bytes())
}

/// `|1|salt|hash`: HMAC-SHA1 of the name under a random salt.
fn hashed_name(name: &str) -> std::io::Result<String> {
    let mut salt = [0u8; 20];
    getrandom::fill(&mut salt).map_err(std::io::Error::other)?;
    let mut mac = Hmac::<Sha1>::new_from_slice(&salt).map_err(std::io::Error::other)?;
    mac.update(name.as_bytes());
    let hash = mac.finalize().into_bytes();
    Ok(format!(
        "|1|{}|{}",
        BASE64.encode(&salt),
        BASE64.encode(&hash)
    ))
}

fn host_matches(hosts: &str, name: &str) -> bool {
    if let Some(hashed) = hosts.strip_prefix("|1|") {
        let Some((salt, hash)) = hashed.split_once('|') else {
            return false;
        };
        let (Ok(salt), Ok(hash)) = (
            BASE64.decode(salt.as_bytes()),
            BASE64.decode(hash.as_bytes()),
        ) else {
            return false;
        };
        let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(&salt) else {
            return false;
        };
        mac.update(name.as_bytes());
        return mac.verify_slice(&hash).is_ok();
    }
    match_list(name, hosts.split(','), true) == ListMatch::Yes
}

fn parse_line(line: &str, file: &Path, number: usize) -> Option<Entry> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut fields = line.split_whitespace();
    let mut first = fields.next()?;
    let marker = match first {
        "@revoked" => Marker::Revoked,
        "@cert-authority" => Marker::CertAuthority,
        other if other.starts_with('@') => return None,
        _ => Marker::None,
    };
    if marker != Marker::None {
        first = fields.next()?;
    }
    let key_type = fields.next()?;
    let key_base64 = fields.next()?;
    let key = PublicKey::from_openssh(&format!("{key_type} {key_base64}")).ok()?;
    Some(Entry {
        marker,
        hosts: first.to_owned(),
        key,
        file: file.to_owned(),
        line: number,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED1: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBXYjZf5mLRBWrDC6leU4slu/+uAr+z8nCgLeCmbtsC3";
    const ED2: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMYCVVFa9zL2b9pA1Xq1h7+0bGz+Z4f9ZlXl0T1P2M5F";

    fn key(text: &str) -> PublicKey {
        PublicKey::from_openssh(text).unwrap()
    }

    fn known(text: &str) -> (tempfile::TempDir, KnownHosts) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("known_hosts");
        fs::write(&file, text).unwrap();
        let hosts = KnownHosts::load(&[dir.path().join("missing"), file]);
        (dir, hosts)
    }

    #[test]
    fn plain_names_ports_and_lists() {
        let (_d, kh) = known(&format!(
            "example.org,alias {ED1}\n[example.org]:2222 {ED2}\n"
        ));
        assert_eq!(kh.check("example.org", &key(ED1)), Status::Known);
        assert_eq!(kh.check("alias", &key(ED1)), Status::Known);
        assert_eq!(kh.check("[example.org]:2222", &key(ED2)), Status::Known);
        assert!(
            matches!(kh.check("[example.org]:2222", &key(ED1)), Status::Changed(p) if p.line == 2)
        );
        assert_eq!(kh.check("other.org", &key(ED1)), Status::Unknown);
        assert_eq!(kh.check("[example.org]:2223", &key(ED1)), Status::Unknown);
    }

    #[test]
    fn wildcards_and_negation() {
        let (_d, kh) = known(&format!("*.lan,!evil.lan {ED1}\n"));
        assert_eq!(kh.check("box.lan", &key(ED1)), Status::Known);
        assert_eq!(kh.check("evil.lan", &key(ED1)), Status::Unknown);
        assert_eq!(kh.check("BOX.LAN", &key(ED1)), Status::Known);
    }

    #[test]
    fn hashed_entries_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/known_hosts");
        learn(&file, "[127.0.0.1]:2299", &key(ED1), true).unwrap();
        learn(&file, "plain.org", &key(ED2), false).unwrap();
        let text = fs::read_to_string(&file).unwrap();
        assert!(text.starts_with("|1|"), "{text}");
        assert!(text.ends_with(&format!("plain.org {ED2}\n")), "{text}");
        let kh = KnownHosts::load(&[file]);
        assert_eq!(kh.check("[127.0.0.1]:2299", &key(ED1)), Status::Known);
        assert_eq!(kh.check("127.0.0.1", &key(ED1)), Status::Unknown);
        assert_eq!(kh.check("plain.org", &key(ED2)), Status::Known);
    }

    #[test]
    fn a_hash_written_by_openssh_matches() {
        // Written by OpenSSH 9.2 (HashKnownHosts yes) for [127.0.0.1]:2299.
        let (_d, kh) = known(&format!(
            "|1|VrLOqWDxCQKwLtcmqwiLjkjxlk0=|SPN7nDaowH5/5OPnQHGUo20iMQg= {ED1}\n"
        ));
        assert_eq!(kh.check("[127.0.0.1]:2299", &key(ED1)), Status::Known);
    }

    #[test]
    fn revoked_beats_known() {
        let (_d, kh) = known(&format!("host {ED1}\n@revoked * {ED1}\n"));
        assert_eq!(kh.check("host", &key(ED1)), Status::Revoked);
        assert_eq!(
            kh.check("host", &key(ED2)),
            Status::Changed(Place {
                file: _d.path().join("known_hosts"),
                line: 1,
                key_type: "ED25519".into()
            })
        );
    }

    #[test]
    fn junk_lines_are_skipped() {
        let (_d, kh) = known(&format!(
            "# comment\n\nbroken line\n@weird host {ED1}\nhost ssh-ed25519 notbase64\nhost\t{ED1}\n"
        ));
        assert_eq!(kh.check("host", &key(ED1)), Status::Known);
        assert_eq!(kh.known_algorithms("host"), vec![Algorithm::Ed25519]);
    }

    #[test]
    fn learning_appends_after_a_missing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kh");
        fs::write(&file, format!("a {ED1}")).unwrap();
        learn(&file, "b", &key(ED2), false).unwrap();
        assert_eq!(
            fs::read_to_string(&file).unwrap(),
            format!("a {ED1}\nb {ED2}\n")
        );
    }

    #[test]
    fn a_file_with_bytes_that_are_not_text_is_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("known_hosts");
        let mut bytes = b"# caf\xe9\n".to_vec();
        bytes.extend_from_slice(format!("host {ED1} comment").as_bytes());
        bytes.extend_from_slice(b" \xfe\r\nother\xff ");
        bytes.extend_from_slice(format!("{ED2}\n").as_bytes());
        fs::write(&file, &bytes).unwrap();
        let kh = KnownHosts::load(&[file]);
        assert_eq!(kh.check("host", &key(ED1)), Status::Known);
        assert!(matches!(kh.check("host", &key(ED2)), Status::Changed(p) if p.line == 2));
    }

    #[test]
    fn a_host_known_without_its_port() {
        let (_d, kh) = known(&format!("127.0.0.1 {ED1}\n"));
        let fallback = fallback_name("127.0.0.1", 2222, None);
        assert_eq!(fallback.as_deref(), Some("127.0.0.1"));
        let check =
            |text| kh.check_with_fallback("[127.0.0.1]:2222", fallback.as_deref(), &key(text));
        assert_eq!(check(ED1), Status::Known);
        // Another key under the bare name: new to ssh, not changed.
        assert_eq!(check(ED2), Status::Unknown);
        assert_eq!(fallback_name("h", 22, None), None);
        assert_eq!(fallback_name("h", 2222, Some("alias")), None);
        let (_d, kh) = known(&format!("[127.0.0.1]:2222 {ED2}\n127.0.0.1 {ED1}\n"));
        assert!(matches!(
            kh.check_with_fallback("[127.0.0.1]:2222", Some("127.0.0.1"), &key(ED1)),
            Status::Changed(_)
        ));
    }

    #[test]
    fn names() {
        assert_eq!(lookup_name("Example.ORG", 22, None), "example.org");
        assert_eq!(lookup_name("h", 2222, None), "[h]:2222");
        assert_eq!(lookup_name("h", 2222, Some("Alias")), "alias");
    }
}
