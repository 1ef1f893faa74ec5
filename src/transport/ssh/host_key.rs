//! Deciding whether to trust the server's host key, with OpenSSH's rules
//! and OpenSSH's words (StrictHostKeyChecking yes, ask, accept-new, no).

use std::path::PathBuf;

use russh::keys::PublicKeyOrCertificate;
use russh::keys::ssh_key::{Certificate, HashAlg, PublicKey};

use super::known_hosts::{self, KnownHosts, Place, Status};
use super::prompt::{self, Kind};
use crate::config::StrictHostKeyChecking;

/// The key a server showed.
#[derive(Debug, Clone)]
pub enum ServerKey {
    Plain(PublicKey),
    Certificate(Box<Certificate>),
}

impl From<&PublicKeyOrCertificate> for ServerKey {
    fn from(key: &PublicKeyOrCertificate) -> ServerKey {
        match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => ServerKey::Plain(key.clone()),
            PublicKeyOrCertificate::Certificate(cert) => {
                ServerKey::Certificate(Box::new(cert.clone()))
            }
        }
    }
}

impl ServerKey {
    /// The public key itself (a certificate's subject key).
    pub fn public_key(&self) -> PublicKey {
        match self {
            ServerKey::Plain(key) => key.clone(),
            ServerKey::Certificate(cert) => PublicKey::new(cert.public_key().clone(), ""),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Known (or accepted and now learnt).
    Trusted,
    /// Changed or revoked, but StrictHostKeyChecking=no: go on, with no
    /// password or keyboard-interactive authentication.
    KeyAuthenticationOnly,
    /// Refused; the reason has been printed, and the connection fails
    /// with "Host key verification failed.".
    Refused,
}

/// Everything the decision needs about one destination.
#[derive(Debug, Clone)]
pub struct HostKeyPolicy {
    /// The known_hosts name (`host`, `[host]:port`, or HostKeyAlias).
    pub name: String,
    /// Where nothing is known under `name`: the name without the port,
    /// where a matching key is trusted too (as ssh looks again).
    pub fallback_name: Option<String>,
    /// The address connected to, for the confirmation question.
    pub address: String,
    /// The host name certificates must be valid for.
    pub principal: String,
    pub strict: StrictHostKeyChecking,
    pub batch_mode: bool,
    /// Where new keys are written (the first UserKnownHostsFile).
    pub learn_to: Option<PathBuf>,
    pub hash: bool,
    pub known: KnownHosts,
    /// `-q` / LogLevel QUIET: warnings are not shown.
    pub quiet: bool,
}

impl HostKeyPolicy {
    /// Decides, printing what ssh prints and asking if ssh would ask. May
    /// block on the user: call it off the async runtime.
    pub fn decide(&self, key: &ServerKey) -> Verdict {
        if let ServerKey::Certificate(cert) = key {
            match self
                .known
                .check_certificate(&self.name, &self.principal, cert)
            {
                Ok(()) => return Verdict::Trusted,
                Err(why) => self.warn(&format!("Certificate invalid: {why}")),
            }
        }
        let public = key.public_key();
        let key_type = known_hosts::key_type_name(public.algorithm());
        let status =
            self.known
                .check_with_fallback(&self.name, self.fallback_name.as_deref(), &public);
        match status {
            Status::Known => Verdict::Trusted,
            Status::Unknown => self.unknown(&public, &key_type),
            Status::Changed(place) => self.changed(&public, &key_type, &place),
            Status::Revoked => self.revoked(&key_type),
        }
    }

    fn unknown(&self, key: &PublicKey, key_type: &str) -> Verdict {
        let fingerprint = key.fingerprint(HashAlg::Sha256);
        match self.strict {
            StrictHostKeyChecking::Yes => {
                say(&format!(
                    "No {key_type} host key is known for {} and you have requested strict checking.",
                    self.name
                ));
                return refused();
            }
            StrictHostKeyChecking::Ask => {
                if self.batch_mode || !self.confirm(key_type, &fingerprint.to_string()) {
                    return refused();
                }
            }
            StrictHostKeyChecking::AcceptNew | StrictHostKeyChecking::No => {}
        }
        self.learn(key, key_type);
        Verdict::Trusted
    }

    fn confirm(&self, key_type: &str, fingerprint: &str) -> bool {
        let mut question = format!(
            "The authenticity of host '{} ({})' can't be established.\n\
             {key_type} key fingerprint is {fingerprint}.\n\
             This key is not known by any other names.\n\
             Are you sure you want to continue connecting (yes/no/[fingerprint])? ",
            self.name, self.address
        );
        loop {
            match prompt::ask(&question, Kind::Confirm) {
                Some(answer) => match answer.trim() {
                    a if a.eq_ignore_ascii_case("yes") || a == fingerprint => return true,
                    a if a.eq_ignore_ascii_case("no") => return false,
                    _ => question = "Please type 'yes', 'no' or the fingerprint: ".into(),
                },
                None => return false,
            }
        }
    }

    fn learn(&self, key: &PublicKey, key_type: &str) {
        let Some(file) = &self.learn_to else {
            return;
        };
        match known_hosts::learn(file, &self.name, key, self.hash) {
            Ok(()) => self.warn(&format!(
                "Warning: Permanently added '{}' ({key_type}) to the list of known hosts.",
                self.name
            )),
            Err(_) => self.warn(&format!(
                "Failed to add the host to the list of known hosts ({}).",
                file.display()
            )),
        }
    }

    fn changed(&self, key: &PublicKey, key_type: &str, place: &Place) -> Verdict {
        let learn_to = self
            .learn_to
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        if !self.quiet {
            say(&format!(
                "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
                 @    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n\
                 @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
                 IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\n\
                 Someone could be eavesdropping on you right now (man-in-the-middle attack)!\n\
                 It is also possible that a host key has just been changed.\n\
                 The fingerprint for the {key_type} key sent by the remote host is\n\
                 {}.\n\
                 Please contact your system administrator.\n\
                 Add correct host key in {learn_to} to get rid of this message.\n\
                 Offending {} key in {}:{}\n  \
                 remove with:\n  \
                 ssh-keygen -f \"{}\" -R \"{}\"",
                key.fingerprint(HashAlg::Sha256),
                place.key_type,
                place.file.display(),
                place.line,
                place.file.display(),
                self.name
            ));
        }
        if self.strict != StrictHostKeyChecking::No {
            say(&format!(
                "Host key for {} has changed and you have requested strict checking.",
                self.name
            ));
            return refused();
        }
        self.key_authentication_only()
    }

    fn revoked(&self, key_type: &str) -> Verdict {
        if !self.quiet {
            say(&format!(
                "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
                 @       WARNING: REVOKED HOST KEY DETECTED!               @\n\
                 @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
                 The {key_type} host key for {} is marked as revoked.\n\
                 This could mean that a stolen key is being used to\n\
                 impersonate this host.",
                self.name
            ));
        }
        if self.strict != StrictHostKeyChecking::No {
            say(&format!(
                "{key_type} host key for {} was revoked and you have requested strict checking.",
                self.name
            ));
            return refused();
        }
        self.key_authentication_only()
    }

    fn key_authentication_only(&self) -> Verdict {
        self.warn(
            "Password authentication is disabled to avoid man-in-the-middle attacks.\n\
             Keyboard-interactive authentication is disabled to avoid man-in-the-middle attacks.",
        );
        Verdict::KeyAuthenticationOnly
    }

    fn warn(&self, text: &str) {
        if !self.quiet {
            say(text);
        }
    }
}

/// The connection then fails with "Host key verification failed.",
/// reported once by the caller.
fn refused() -> Verdict {
    Verdict::Refused
}

/// ssh's own lines, printed as ssh prints them (no `rscp:` prefix).
fn say(text: &str) {
    crate::report::notice(text);
}
