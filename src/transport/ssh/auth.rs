//! Authentication as ssh does it: methods in PreferredAuthentications
//! order among those the server allows; public keys from the agent and
//! from files (certificates first, then agent keys named in the config,
//! other agent keys unless IdentitiesOnly, then the other key files);
//! passphrases, passwords and keyboard-interactive answers asked through
//! [`prompt`](super::prompt). BatchMode, or no way to ask, skips what would
//! need an answer: the run fails at once rather than waiting.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::MethodKind;
use russh::client::{AuthResult, Handle, KeyboardInteractiveAuthResponse};
use russh::keys::PrivateKeyWithHashAlg;
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::ssh_key::{Certificate, HashAlg, PrivateKey, PublicKey};

use super::connection::Client;
use super::log::Log;
use super::prompt::{self, Kind};
use crate::config::Settings;

/// The server's view of what may still be tried.
struct Methods {
    remaining: Vec<MethodKind>,
}

impl Methods {
    fn allows(&self, kind: MethodKind) -> bool {
        self.remaining.contains(&kind)
    }

    fn update(&mut self, result: &AuthResult) {
        if let AuthResult::Failure {
            remaining_methods, ..
        } = result
        {
            self.remaining = remaining_methods.iter().cloned().collect();
        }
    }

    fn list(&self) -> String {
        self.remaining
            .iter()
            .map(<&str>::from)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A key file named by IdentityFile (or a default one that exists).
struct KeyFile {
    path: PathBuf,
    /// From `path.pub`, if present: lets the key be matched with the agent
    /// without reading (or decrypting) the private key.
    public: Option<PublicKey>,
}

pub async fn authenticate(
    handle: &mut Handle<Client>,
    settings: &Settings,
    key_authentication_only: bool,
    log: &Log,
) -> Result<(), String> {
    let user = settings.user.clone();
    let mut methods = match handle.authenticate_none(&user).await {
        Ok(AuthResult::Success) => return Ok(()),
        Ok(AuthResult::Failure {
            remaining_methods, ..
        }) => Methods {
            remaining: remaining_methods.iter().cloned().collect(),
        },
        Err(e) => return Err(format!("authentication failed: {e}")),
    };
    log.debug1(&format!(
        "Authentications that can continue: {}",
        methods.list()
    ));
    let interactive = !key_authentication_only && !settings.batch_mode;
    for method in &settings.preferred_authentications {
        let done = match method.as_str() {
            "publickey"
                if settings.pubkey_authentication && methods.allows(MethodKind::PublicKey) =>
            {
                log.debug1("Next authentication method: publickey");
                public_keys(handle, settings, &mut methods, log).await?
            }
            "keyboard-interactive"
                if interactive
                    && settings.kbd_interactive_authentication
                    && methods.allows(MethodKind::KeyboardInteractive) =>
            {
                log.debug1("Next authentication method: keyboard-interactive");
                keyboard_interactive(handle, settings, &mut methods, log).await?
            }
            "password"
                if interactive
                    && settings.password_authentication
                    && methods.allows(MethodKind::Password) =>
            {
                log.debug1("Next authentication method: password");
                password(handle, settings, &mut methods).await?
            }
            _ => false,
        };
        if done {
            log.debug1(&format!(
                "Authenticated to {} using \"{method}\".",
                settings.hostname
            ));
            return Ok(());
        }
    }
    Err(format!(
        "{}@{}: Permission denied ({}).",
        user,
        settings.hostname,
        methods.list()
    ))
}

async fn public_keys(
    handle: &mut Handle<Client>,
    settings: &Settings,
    methods: &mut Methods,
    log: &Log,
) -> Result<bool, String> {
    let user = settings.user.clone();
    let files = key_files(settings, log);
    let mut agent = match &settings.identity_agent {
        Some(socket) => match AgentClient::connect_uds(socket).await {
            Ok(agent) => Some(agent.dynamic()),
            Err(e) => {
                log.debug1(&format!("agent {}: {e}; not using it", socket.display()));
                None
            }
        },
        None => None,
    };
    let agent_keys: Vec<AgentIdentity> = match agent.as_mut() {
        Some(agent) => agent.request_identities().await.unwrap_or_default(),
        None => Vec::new(),
    };
    let in_agent = |key: &PublicKey| {
        agent_keys
            .iter()
            .find(|a| a.public_key().key_data() == key.key_data())
            .cloned()
    };
    let rsa_hash = handle
        .best_supported_rsa_hash()
        .await
        .ok()
        .flatten()
        .flatten();
    let mut tried: Vec<PublicKey> = Vec::new();

    // 1. Certificates, with their key from the agent or the matching file.
    for cert in certificates(settings, &files) {
        let subject = PublicKey::new(cert.public_key().clone(), "");
        if tried.iter().any(|k| k.key_data() == subject.key_data()) {
            continue;
        }
        tried.push(subject.clone());
        log.debug1(&format!(
            "Offering public key certificate: {}",
            describe(&subject)
        ));
        let result = if let (Some(agent), Some(_)) = (agent.as_mut(), in_agent(&subject)) {
            handle
                .authenticate_certificate_with(&user, cert.clone(), rsa_hash, agent)
                .await
                .map_err(|e| e.to_string())?
        } else if let Some(file) = files.iter().find(|f| {
            f.public
                .as_ref()
                .is_some_and(|p| p.key_data() == subject.key_data())
        }) {
            let Some(key) = load_private(&file.path, settings, log).await else {
                continue;
            };
            handle
                .authenticate_openssh_cert(&user, Arc::new(key), cert.clone())
                .await
                .map_err(|e| e.to_string())?
        } else {
            continue;
        };
        if accepted(&result, methods) {
            return Ok(true);
        }
        if !methods.allows(MethodKind::PublicKey) {
            return Ok(false);
        }
    }

    // 2 and 3. Agent keys: those named in the config first; the others
    // unless IdentitiesOnly.
    if let Some(agent) = agent.as_mut() {
        let named: Vec<AgentIdentity> = files
            .iter()
            .filter_map(|f| f.public.as_ref().and_then(&in_agent))
            .collect();
        let others: Vec<AgentIdentity> = if settings.identities_only {
            Vec::new()
        } else {
            agent_keys
                .iter()
                .filter(|a| {
                    !named
                        .iter()
                        .any(|n| n.public_key().key_data() == a.public_key().key_data())
                })
                .cloned()
                .collect()
        };
        for identity in named.into_iter().chain(others) {
            let public = identity.public_key().into_owned();
            if tried.iter().any(|k| k.key_data() == public.key_data()) {
                continue;
            }
            tried.push(public.clone());
            log.debug1(&format!("Offering public key: {} agent", describe(&public)));
            let hash = public.algorithm().is_rsa().then_some(rsa_hash).flatten();
            let result = match &identity {
                AgentIdentity::Certificate { certificate, .. } => {
                    handle
                        .authenticate_certificate_with(&user, certificate.clone(), hash, agent)
                        .await
                }
                _ => {
                    handle
                        .authenticate_publickey_with(&user, public.clone(), hash, agent)
                        .await
                }
            };
            let Ok(result) = result else {
                log.debug1("agent refused to sign");
                continue;
            };
            if accepted(&result, methods) {
                return Ok(true);
            }
            if !methods.allows(MethodKind::PublicKey) {
                return Ok(false);
            }
        }
    }

    // 4. Key files not already tried through the agent.
    for file in &files {
        if file
            .public
            .as_ref()
            .is_some_and(|p| tried.iter().any(|k| k.key_data() == p.key_data()))
        {
            continue;
        }
        let Some(key) = load_private(&file.path, settings, log).await else {
            continue;
        };
        let public = key.public_key().clone();
        if tried.iter().any(|k| k.key_data() == public.key_data()) {
            continue;
        }
        tried.push(public.clone());
        log.debug1(&format!(
            "Offering public key: {} {}",
            file.path.display(),
            describe(&public)
        ));
        let hash = public.algorithm().is_rsa().then_some(rsa_hash).flatten();
        let result = handle
            .authenticate_publickey(&user, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
            .await
            .map_err(|e| e.to_string())?;
        if accepted(&result, methods) {
            return Ok(true);
        }
        if !methods.allows(MethodKind::PublicKey) {
            return Ok(false);
        }
    }
    Ok(false)
}

fn accepted(result: &AuthResult, methods: &mut Methods) -> bool {
    methods.update(result);
    result.success()
}

fn describe(key: &PublicKey) -> String {
    format!(
        "{} {}",
        super::known_hosts::key_type_name(key.algorithm()),
        key.fingerprint(HashAlg::Sha256)
    )
}

/// The identity files to try: those configured, or the defaults that exist.
fn key_files(settings: &Settings, log: &Log) -> Vec<KeyFile> {
    let mut files = Vec::new();
    for path in &settings.identity_files {
        if !path.exists() {
            if settings.identity_files_configured && !log.quiet() {
                crate::report::error(&format!(
                    "Warning: Identity file {} not accessible: No such file or directory.",
                    path.display()
                ));
            }
            continue;
        }
        let mut public_path = path.clone().into_os_string();
        public_path.push(".pub");
        let public = read_openssh_line(Path::new(&public_path))
            .and_then(|line| PublicKey::from_openssh(&line).ok());
        files.push(KeyFile {
            path: path.clone(),
            public,
        });
    }
    files
}

/// CertificateFile entries, then `<identity>-cert.pub` beside each key file.
fn certificates(settings: &Settings, files: &[KeyFile]) -> Vec<Certificate> {
    let mut paths: Vec<PathBuf> = settings.certificate_files.clone();
    for file in files {
        let mut cert = file.path.clone().into_os_string();
        cert.push("-cert.pub");
        paths.push(PathBuf::from(cert));
    }
    paths
        .iter()
        .filter_map(|p| read_openssh_line(p))
        .filter_map(|line| Certificate::from_openssh(&line).ok())
        .collect()
}

/// The `type base64` of a public key or certificate file, read as bytes
/// line by line: a comment that is not UTF-8 does not cost the key.
fn read_openssh_line(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    crate::config::text_lines(&bytes).find_map(|line| {
        let mut fields = line.split_whitespace();
        let kind = fields.next().filter(|k| !k.starts_with('#'))?;
        let base64 = fields.next()?;
        Some(format!("{kind} {base64}"))
    })
}

/// Reads a private key, asking for its passphrase if it is encrypted (as
/// many times as NumberOfPasswordPrompts allows; an empty answer gives up).
async fn load_private(path: &Path, settings: &Settings, log: &Log) -> Option<PrivateKey> {
    let path = path.to_owned();
    let try_load = |passphrase: Option<String>| {
        let path = path.clone();
        tokio::task::spawn_blocking(move || {
            russh::keys::load_secret_key(&path, passphrase.as_deref())
        })
    };
    match try_load(None).await.ok()? {
        Ok(key) => return Some(key),
        Err(russh::keys::Error::KeyIsEncrypted) => {}
        Err(e) => {
            log.debug1(&format!("cannot read {}: {e}", path.display()));
            return None;
        }
    }
    if settings.batch_mode {
        log.debug1(&format!(
            "{}: encrypted key skipped in batch mode",
            path.display()
        ));
        return None;
    }
    let mut question = format!("Enter passphrase for key '{}': ", path.display());
    for _ in 0..settings.number_of_password_prompts.max(1) {
        let asked = question.clone();
        let answer = tokio::task::spawn_blocking(move || prompt::ask(&asked, Kind::Secret))
            .await
            .ok()
            .flatten()?;
        if answer.is_empty() {
            return None;
        }
        if let Ok(Ok(key)) = try_load(Some(answer)).await {
            return Some(key);
        }
        question = format!("Bad passphrase, try again for {}: ", path.display());
    }
    None
}

async fn password(
    handle: &mut Handle<Client>,
    settings: &Settings,
    methods: &mut Methods,
) -> Result<bool, String> {
    let question = format!("{}@{}'s password: ", settings.user, settings.hostname);
    for attempt in 0..settings.number_of_password_prompts {
        if attempt > 0 {
            crate::report::error("Permission denied, please try again.");
        }
        let asked = question.clone();
        let Some(answer) = tokio::task::spawn_blocking(move || prompt::ask(&asked, Kind::Secret))
            .await
            .ok()
            .flatten()
        else {
            return Ok(false);
        };
        let result = handle
            .authenticate_password(&settings.user, answer)
            .await
            .map_err(|e| e.to_string())?;
        if accepted(&result, methods) {
            return Ok(true);
        }
        if !methods.allows(MethodKind::Password) {
            return Ok(false);
        }
    }
    Ok(false)
}

/// A keyboard-interactive prompt as ssh shows it: `(user@host) prompt`,
/// the host being the HostKeyAlias if there is one; escaped, line breaks
/// too (ssh keeps them), so that no line of it can pass for a question of
/// ours without the prefix.
fn kbd_prompt(settings: &Settings, prompt: &str) -> String {
    let host = match &settings.host_key_alias {
        Some(alias) => alias.clone(),
        None => settings.hostname.to_lowercase(),
    };
    crate::escape::for_terminal(format!("({}@{host}) {prompt}", settings.user).as_bytes())
}

async fn keyboard_interactive(
    handle: &mut Handle<Client>,
    settings: &Settings,
    methods: &mut Methods,
    log: &Log,
) -> Result<bool, String> {
    for _ in 0..settings.number_of_password_prompts {
        let mut response = handle
            .authenticate_keyboard_interactive_start(&settings.user, None::<String>)
            .await
            .map_err(|e| e.to_string())?;
        loop {
            match response {
                KeyboardInteractiveAuthResponse::Success => return Ok(true),
                KeyboardInteractiveAuthResponse::Failure {
                    remaining_methods, ..
                } => {
                    methods.remaining = remaining_methods.iter().cloned().collect();
                    break;
                }
                KeyboardInteractiveAuthResponse::InfoRequest {
                    name,
                    instructions,
                    prompts,
                } => {
                    // Server text: escaped like all text from the network,
                    // and the prompts prefixed as ssh prefixes them.
                    for text in [name, instructions] {
                        if !text.is_empty() && !log.quiet() {
                            crate::report::remote(text.as_bytes());
                        }
                    }
                    let mut answers = Vec::with_capacity(prompts.len());
                    for p in prompts {
                        let kind = if p.echo { Kind::Echoed } else { Kind::Secret };
                        let asked = kbd_prompt(settings, &p.prompt);
                        let Some(answer) =
                            tokio::task::spawn_blocking(move || prompt::ask(&asked, kind))
                                .await
                                .ok()
                                .flatten()
                        else {
                            return Ok(false);
                        };
                        answers.push(answer);
                    }
                    response = handle
                        .authenticate_keyboard_interactive_respond(answers)
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
        }
        if !methods.allows(MethodKind::KeyboardInteractive) {
            return Ok(false);
        }
    }
    Ok(false)
}
