//! The effective ssh settings for one destination, read as ssh reads them:
//! command-line flags and `-o` first, then `-F file` (or `-F none`) or else
//! `~/.ssh/config` and `/etc/ssh/ssh_config`; for each keyword the first
//! value obtained wins (a few, such as `IdentityFile`, accumulate).
//!
//! Written here rather than taken from a crate: the one maintained parser
//! (ssh2-config) has no `Match`, and ssh's rules for `Match` (evaluated
//! against the values obtained so far), `Include` inside blocks, negated
//! patterns and unknown keywords are what users' configs rely on.

mod keywords;
pub mod pattern;
pub mod tokens;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::escape::for_terminal;

pub use keywords::{AddressFamily, LogLevel, StrictHostKeyChecking};
use keywords::{Keyword, Raw};
use pattern::{ListMatch, match_comma_list, match_list};
use tokens::{Tokens, expand_tilde};

/// Nested `Include` deeper than this is an error, as in ssh.
const MAX_INCLUDE_DEPTH: usize = 16;

/// Which configuration files to read after the command line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ConfigFiles {
    /// `~/.ssh/config`, then `/etc/ssh/ssh_config`.
    #[default]
    Default,
    /// `-F none`: no files at all.
    None,
    /// `-F file`: that file only.
    File(PathBuf),
}

/// What is asked for, before any file is read.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The host as the user wrote it.
    pub host: String,
    /// From `user@host` (wins over everything).
    pub user: Option<String>,
    /// From `scp://host:port` or `-P` (wins over everything).
    pub port: Option<u16>,
    /// Command-line options as config lines, in order (`-o`, and flags such
    /// as `-i` or `-4` translated to their keywords).
    pub command_line: Vec<String>,
    pub files: ConfigFiles,
    /// The invoking user's name and home directory.
    pub local_user: String,
    pub home: String,
    /// Where the system-wide file is (`/etc/ssh/ssh_config`; tests differ).
    pub system_config: Option<PathBuf>,
}

/// Everything ssh would use to reach one destination.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The host as given (`%n`).
    pub original_host: String,
    /// Where to connect (HostName, or the host as given).
    pub hostname: String,
    pub port: u16,
    pub user: String,
    pub identity_files: Vec<PathBuf>,
    /// Whether any IdentityFile was configured (else the defaults apply,
    /// only those that exist being tried).
    pub identity_files_configured: bool,
    pub identities_only: bool,
    /// `None` for "none"; else the socket path (SSH_AUTH_SOCK by default).
    pub identity_agent: Option<PathBuf>,
    pub certificate_files: Vec<PathBuf>,
    pub pubkey_authentication: bool,
    pub password_authentication: bool,
    pub kbd_interactive_authentication: bool,
    pub preferred_authentications: Vec<String>,
    pub batch_mode: bool,
    pub number_of_password_prompts: u32,
    pub strict_host_key_checking: StrictHostKeyChecking,
    pub user_known_hosts_files: Vec<PathBuf>,
    pub global_known_hosts_files: Vec<PathBuf>,
    pub hash_known_hosts: bool,
    pub host_key_alias: Option<String>,
    pub host_key_algorithms: Option<String>,
    pub ciphers: Option<String>,
    pub macs: Option<String>,
    pub kex_algorithms: Option<String>,
    pub compression: bool,
    pub connect_timeout: Option<Duration>,
    pub connection_attempts: u32,
    pub server_alive_interval: Option<Duration>,
    pub server_alive_count_max: u32,
    pub address_family: AddressFamily,
    pub bind_address: Option<String>,
    /// `None` for no jump (or "none").
    pub proxy_jump: Option<String>,
    /// `None` for no command (or "none"); tokens already expanded.
    pub proxy_command: Option<String>,
    pub forward_agent: bool,
    pub log_level: LogLevel,
    /// Keywords that were set but have no effect in rscp (for `-v`).
    pub ignored: Vec<String>,
}

/// A configuration that ssh would refuse. The text is ssh's wording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Where a line comes from, for messages and for rules that differ
/// (command-line lines cannot open blocks or include files).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin<'a> {
    CommandLine,
    File {
        path: &'a Path,
        line: usize,
        user_file: bool,
    },
}

impl Origin<'_> {
    fn describe(&self) -> String {
        match self {
            Origin::CommandLine => "command line".into(),
            Origin::File { path, line, .. } => format!("{} line {}", path.display(), line),
        }
    }
}

/// Reading state: the values obtained so far.
struct Reader<'r> {
    request: &'r Request,
    raw: Raw,
    /// IgnoreUnknown patterns seen so far.
    ignore_unknown: Option<Vec<String>>,
    bad_options: usize,
    /// Reading text that is not the user's (the fuzzer's): nothing is run,
    /// no other file is read, nothing is printed.
    sandboxed: bool,
}

/// Reads the settings for `request`.
pub fn resolve(request: &Request) -> Result<Settings, ConfigError> {
    let mut reader = Reader::new(request, false);
    reader.command_line()?;
    match request.files.clone() {
        ConfigFiles::None => {}
        ConfigFiles::File(path) => {
            let path = PathBuf::from(expand_tilde(&path.to_string_lossy(), &request.home));
            if !reader.file(&path, true, true, false, 0)? {
                return Err(ConfigError(format!(
                    "Can't open user config file {}: No such file or directory",
                    path.display()
                )));
            }
        }
        ConfigFiles::Default => {
            let user = PathBuf::from(&request.home).join(".ssh/config");
            reader.file(&user, true, true, false, 0)?;
            if let Some(system) = &request.system_config {
                reader.file(system, false, true, false, 0)?;
            }
        }
    }
    reader.finish()
}

/// Reads the settings for `request` from `text` as its only config file,
/// sandboxed: `Match exec` fails instead of running, `Include` reads
/// nothing, nothing is printed. For the fuzzer.
#[doc(hidden)]
pub fn resolve_text(request: &Request, text: &[u8]) -> Result<Settings, ConfigError> {
    let mut reader = Reader::new(request, true);
    reader.command_line()?;
    reader.text(text, Path::new("fuzzed"), true, true, false, 0)?;
    reader.finish()
}

impl<'r> Reader<'r> {
    fn new(request: &'r Request, sandboxed: bool) -> Reader<'r> {
        Reader {
            request,
            raw: Raw::default(),
            ignore_unknown: None,
            bad_options: 0,
            sandboxed,
        }
    }

    /// The destination's own parts, then the command-line options.
    fn command_line(&mut self) -> Result<(), ConfigError> {
        let request = self.request;
        // ~/.ssh would name another directory (see `line` on such bytes).
        if request.home.contains(char::REPLACEMENT_CHARACTER) {
            return Err(ConfigError(
                "the home directory's name is not UTF-8: ~/.ssh cannot be read".into(),
            ));
        }
        if let Some(port) = request.port {
            self.raw.port.get_or_insert(port);
        }
        if let Some(user) = &request.user {
            self.raw.user.get_or_insert(user.clone());
        }
        for line in &request.command_line {
            let mut active = true;
            self.line(line, Origin::CommandLine, &mut active, false, 0)?;
        }
        if self.bad_options > 0 {
            return Err(ConfigError(format!(
                "command line: terminating, {} bad configuration options",
                self.bad_options
            )));
        }
        Ok(())
    }
}

impl Reader<'_> {
    /// Reads one file; false if it does not exist. `active` is whether its
    /// leading lines apply; `never_match` for files included from a block
    /// that does not apply (read for errors only).
    fn file(
        &mut self,
        path: &Path,
        user_file: bool,
        active: bool,
        never_match: bool,
        depth: usize,
    ) -> Result<bool, ConfigError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => {
                return Err(ConfigError(format!(
                    "Can't open user config file {}: {}",
                    path.display(),
                    crate::escape::io_reason(&e)
                )));
            }
        };
        if user_file {
            check_permissions(path)?;
        }
        self.text(&bytes, path, user_file, active, never_match, depth)?;
        Ok(true)
    }

    /// Reads the lines of one file.
    fn text(
        &mut self,
        bytes: &[u8],
        path: &Path,
        user_file: bool,
        active: bool,
        never_match: bool,
        depth: usize,
    ) -> Result<(), ConfigError> {
        let mut active = active && !never_match;
        for (index, line) in text_lines(bytes).enumerate() {
            let origin = Origin::File {
                path,
                line: index + 1,
                user_file,
            };
            self.line(&line, origin, &mut active, never_match, depth)?;
        }
        if self.bad_options > 0 {
            return Err(ConfigError(format!(
                "{}: terminating, {} bad configuration options",
                path.display(),
                self.bad_options
            )));
        }
        Ok(())
    }

    fn line(
        &mut self,
        line: &str,
        origin: Origin,
        active: &mut bool,
        never_match: bool,
        depth: usize,
    ) -> Result<(), ConfigError> {
        let Some((keyword, args, rest)) =
            split_line(line).map_err(|why| ConfigError(format!("{}: {why}", origin.describe())))?
        else {
            return Ok(());
        };
        let lower = keyword.to_ascii_lowercase();
        // A value with bytes that are not UTF-8 (read as U+FFFD) would name
        // another file, command or host than the one written: refused,
        // never used changed (a known_hosts file that does not exist would
        // make every host new). Host patterns with them match nothing, as
        // in ssh (command-line hosts are UTF-8).
        let not_text = |text: &str| text.contains(char::REPLACEMENT_CHARACTER);
        let value_not_text =
            args.iter().any(|a| not_text(a)) || (lower == "proxycommand" && not_text(&rest));
        if value_not_text && lower != "host" && Keyword::lookup(&lower) != Some(Keyword::Ignored) {
            return Err(ConfigError(format!(
                "{}: {keyword}: a value with bytes that are not UTF-8 is not supported",
                origin.describe()
            )));
        }
        match lower.as_str() {
            "host" | "match" if origin == Origin::CommandLine => {
                return Err(ConfigError(format!(
                    "{} is not allowed on the command line",
                    keyword
                )));
            }
            "host" => {
                *active = !never_match && self.host_matches(&args);
                return Ok(());
            }
            "match" => {
                *active = !never_match && self.match_applies(&args, &origin)?;
                return Ok(());
            }
            "include" => {
                let Origin::File { user_file, .. } = origin else {
                    return Err(ConfigError(
                        "Include directive not supported as a command-line option".into(),
                    ));
                };
                return self.include(&args, &origin, user_file, *active, depth);
            }
            "ignoreunknown" => {
                if *active && self.ignore_unknown.is_none() {
                    self.ignore_unknown = Some(
                        args.iter()
                            .flat_map(|a| a.split(','))
                            .map(str::to_owned)
                            .collect(),
                    );
                }
                return Ok(());
            }
            _ => {}
        }
        let Some(keyword_kind) = Keyword::lookup(&lower) else {
            let ignored = self.ignore_unknown.as_ref().is_some_and(|patterns| {
                match_list(&lower, patterns.iter().map(String::as_str), true) == ListMatch::Yes
            });
            if !ignored {
                if !self.sandboxed {
                    crate::report::error(&format!(
                        "{}: Bad configuration option: {}",
                        origin.describe(),
                        keyword
                    ));
                }
                self.bad_options += 1;
            }
            return Ok(());
        };
        if origin == Origin::CommandLine {
            command_line_names(keyword_kind, &args)?;
        }
        if !*active {
            // Still checked, as ssh checks lines in blocks that do not apply.
            keywords::check(keyword_kind, &args, &rest)
                .map_err(|why| ConfigError(format!("{}: {why}", origin.describe())))?;
            return Ok(());
        }
        self.raw
            .set(keyword_kind, &keyword, &args, &rest)
            .map_err(|why| ConfigError(format!("{}: {why}", origin.describe())))
    }

    fn host_matches(&self, patterns: &[String]) -> bool {
        let host = self.request.host.to_lowercase();
        let mut matched = false;
        for pattern in patterns {
            let (negated, pattern) = match pattern.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, pattern.as_str()),
            };
            if pattern::matches(&host, &pattern.to_lowercase()) {
                if negated {
                    return false;
                }
                matched = true;
            }
        }
        matched
    }

    /// `Match` criteria, all of which must hold. Supported: all, host,
    /// originalhost, user, localuser, exec, final, canonical.
    fn match_applies(&self, args: &[String], origin: &Origin) -> Result<bool, ConfigError> {
        let bad = |why: String| ConfigError(format!("{}: {why}", origin.describe()));
        if args.is_empty() {
            return Err(bad("Missing Match criteria".into()));
        }
        let mut result = true;
        let mut i = 0;
        while i < args.len() {
            let (negated, criterion) = match args[i].strip_prefix('!') {
                Some(rest) => (true, rest.to_ascii_lowercase()),
                None => (false, args[i].to_ascii_lowercase()),
            };
            i += 1;
            let holds = match criterion.as_str() {
                "all" => true,
                // rscp reads the configuration once; that pass is the final one.
                "final" | "canonical" => true,
                "host" | "originalhost" | "user" | "localuser" | "exec" => {
                    let Some(arg) = args.get(i) else {
                        return Err(bad(format!("Missing Match criteria for {criterion}")));
                    };
                    i += 1;
                    match criterion.as_str() {
                        "host" => match_comma_list(&self.current_host(), arg, true),
                        "originalhost" => match_comma_list(&self.request.host, arg, true),
                        "user" => match_comma_list(&self.current_user(), arg, false),
                        "localuser" => match_comma_list(&self.request.local_user, arg, false),
                        _ => {
                            if !result {
                                // A criterion already failed: the command is
                                // not run, as in ssh.
                                false
                            } else {
                                self.run_match_exec(arg).map_err(bad)?
                            }
                        }
                    }
                }
                other => return Err(bad(format!("Unsupported Match attribute {other}"))),
            };
            result &= holds != negated;
        }
        Ok(result)
    }

    fn current_host(&self) -> String {
        match &self.raw.hostname {
            Some(name) => name.replace("%h", &self.request.host).replace("%%", "%"),
            None => self.request.host.clone(),
        }
    }

    fn current_user(&self) -> String {
        self.raw
            .user
            .clone()
            .unwrap_or_else(|| self.request.local_user.clone())
    }

    fn run_match_exec(&self, command: &str) -> Result<bool, String> {
        let tokens = self.tokens(
            &self.current_host(),
            self.raw.port.unwrap_or(22),
            &self.current_user(),
        );
        let command = tokens.expand(command)?;
        if self.sandboxed {
            return Err("Match exec is not run here".into());
        }
        let status = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(&command)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .status()
            .map_err(|e| format!("Match exec: {}", crate::escape::io_reason(&e)))?;
        Ok(status.success())
    }

    fn include(
        &mut self,
        args: &[String],
        origin: &Origin,
        user_file: bool,
        active: bool,
        depth: usize,
    ) -> Result<(), ConfigError> {
        if depth + 1 > MAX_INCLUDE_DEPTH {
            return Err(ConfigError(format!(
                "{}: Too many recursive configuration includes",
                origin.describe()
            )));
        }
        if self.sandboxed {
            return Ok(());
        }
        for arg in args {
            if arg.starts_with('~') && !user_file {
                return Err(ConfigError(format!(
                    "{}: bad include path {arg}.",
                    origin.describe()
                )));
            }
            let anchored = if arg.starts_with('/') || arg.starts_with('~') {
                arg.clone()
            } else if user_file {
                format!("~/.ssh/{arg}")
            } else {
                format!("/etc/ssh/{arg}")
            };
            let pattern = expand_tilde(&anchored, &self.request.home);
            let mut paths: Vec<PathBuf> = glob::glob(&pattern)
                .map_err(|_| {
                    ConfigError(format!("{}: glob failed for {pattern}.", origin.describe()))
                })?
                .filter_map(Result::ok)
                .collect();
            paths.sort();
            // Each file keeps its own Host/Match state: what it does there
            // does not change whether the including block applies.
            for path in paths {
                self.file(&path, user_file, active, !active, depth + 1)?;
            }
        }
        Ok(())
    }

    fn tokens(&self, host: &str, port: u16, remote_user: &str) -> Tokens {
        let local_host = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default();
        let short = local_host.split('.').next().unwrap_or_default().to_owned();
        let mut tokens = Tokens::new();
        tokens
            .set('h', host)
            .set('p', port.to_string())
            .set('r', remote_user)
            .set('n', self.request.host.clone())
            .set('u', self.request.local_user.clone())
            .set('d', self.request.home.clone())
            .set('l', local_host.clone())
            .set('L', short)
            .set('i', nix::unistd::getuid().to_string())
            .set(
                'k',
                self.raw
                    .host_key_alias
                    .clone()
                    .unwrap_or_else(|| self.request.host.clone()),
            )
            .set('j', self.raw.proxy_jump.clone().unwrap_or_default())
            .set(
                'C',
                connection_hash(
                    &local_host,
                    host,
                    port,
                    remote_user,
                    self.raw.proxy_jump.as_deref(),
                ),
            );
        tokens
    }

    /// Fills in defaults and expands tokens, as ssh does once all files
    /// are read.
    fn finish(self) -> Result<Settings, ConfigError> {
        let request = self.request;
        let raw = &self.raw;
        let hostname = self.current_host();
        let port = raw.port.unwrap_or(22);
        let user = self.current_user();
        let tokens = self.tokens(&hostname, port, &user);
        let expand = |text: &str| {
            tokens
                .expand(text)
                .map_err(|why| ConfigError(format!("{text}: {why}")))
        };
        let path = |text: &str| -> Result<PathBuf, ConfigError> {
            Ok(PathBuf::from(expand_tilde(&expand(text)?, &request.home)))
        };
        let paths = |list: &[String]| -> Result<Vec<PathBuf>, ConfigError> {
            list.iter().map(|p| path(p)).collect()
        };
        let default_identities = [
            "~/.ssh/id_rsa",
            "~/.ssh/id_ecdsa",
            "~/.ssh/id_ecdsa_sk",
            "~/.ssh/id_ed25519",
            "~/.ssh/id_ed25519_sk",
            "~/.ssh/id_xmss",
            "~/.ssh/id_dsa",
        ];
        let identity_files = if raw.identity_files.is_empty() {
            default_identities
                .iter()
                .map(|p| path(p))
                .collect::<Result<_, _>>()?
        } else {
            paths(&raw.identity_files)?
        };
        let identity_agent = match raw.identity_agent.as_deref() {
            Some("none") => None,
            Some("SSH_AUTH_SOCK") | None => std::env::var_os("SSH_AUTH_SOCK").map(PathBuf::from),
            Some(value) => match value.strip_prefix('$') {
                Some(variable) => std::env::var_os(variable).map(PathBuf::from),
                None => Some(path(value)?),
            },
        };
        let none_to_option = |value: &Option<String>| {
            value
                .as_ref()
                .filter(|v| !v.eq_ignore_ascii_case("none"))
                .cloned()
        };
        let proxy_command = match none_to_option(&raw.proxy_command) {
            Some(command) => Some(expand(&command)?),
            None => None,
        };
        Ok(Settings {
            original_host: request.host.clone(),
            hostname,
            port,
            user,
            identity_files,
            identity_files_configured: !raw.identity_files.is_empty(),
            identities_only: raw.identities_only.unwrap_or(false),
            identity_agent,
            certificate_files: paths(&raw.certificate_files)?,
            pubkey_authentication: raw.pubkey_authentication.unwrap_or(true),
            password_authentication: raw.password_authentication.unwrap_or(true),
            kbd_interactive_authentication: raw.kbd_interactive_authentication.unwrap_or(true),
            preferred_authentications: raw
                .preferred_authentications
                .clone()
                .unwrap_or_else(|| {
                    "gssapi-with-mic,hostbased,publickey,keyboard-interactive,password".into()
                })
                .split(',')
                .map(str::to_owned)
                .collect(),
            batch_mode: raw.batch_mode.unwrap_or(false),
            number_of_password_prompts: raw.number_of_password_prompts.unwrap_or(3),
            strict_host_key_checking: raw
                .strict_host_key_checking
                .unwrap_or(StrictHostKeyChecking::Ask),
            user_known_hosts_files: paths(
                raw.user_known_hosts_files
                    .as_deref()
                    .unwrap_or(&["~/.ssh/known_hosts".into(), "~/.ssh/known_hosts2".into()]),
            )?,
            global_known_hosts_files: paths(raw.global_known_hosts_files.as_deref().unwrap_or(&[
                "/etc/ssh/ssh_known_hosts".into(),
                "/etc/ssh/ssh_known_hosts2".into(),
            ]))?,
            hash_known_hosts: raw.hash_known_hosts.unwrap_or(false),
            host_key_alias: raw.host_key_alias.clone(),
            host_key_algorithms: raw.host_key_algorithms.clone(),
            ciphers: raw.ciphers.clone(),
            macs: raw.macs.clone(),
            kex_algorithms: raw.kex_algorithms.clone(),
            compression: raw.compression.unwrap_or(false),
            // 0 is no timeout, as in ssh.
            connect_timeout: raw.connect_timeout.filter(|d| !d.is_zero()),
            connection_attempts: match raw.connection_attempts {
                Some(0) => {
                    return Err(ConfigError("Invalid number of ConnectionAttempts".into()));
                }
                Some(n) => n,
                None => 1,
            },
            server_alive_interval: raw.server_alive_interval.filter(|d| !d.is_zero()),
            server_alive_count_max: raw.server_alive_count_max.unwrap_or(3),
            address_family: raw.address_family.unwrap_or(AddressFamily::Any),
            bind_address: raw.bind_address.clone(),
            proxy_jump: none_to_option(&raw.proxy_jump),
            proxy_command,
            forward_agent: raw.forward_agent.unwrap_or(false),
            log_level: raw.log_level.unwrap_or(LogLevel::Info),
            ignored: raw.ignored.clone(),
        })
    }
}

/// ssh's check of names given on the command line (`-o User=`, `-J`),
/// which `%r` and `%h` may carry into a shell: the same rules as for the
/// operands. Names from configuration files are the user's own and are
/// not checked, as in ssh.
fn command_line_names(keyword: Keyword, args: &[String]) -> Result<(), ConfigError> {
    use crate::operand::{safe_host, safe_user};
    let bad_user = |user: &str| {
        ConfigError(format!(
            "{}: remote username contains invalid characters",
            for_terminal(user.as_bytes())
        ))
    };
    match keyword {
        Keyword::User => match args.first() {
            Some(user) if !safe_user(user) => Err(bad_user(user)),
            _ => Ok(()),
        },
        Keyword::ProxyJump => {
            for hop in args.iter().flat_map(|a| a.split(',')) {
                if hop.eq_ignore_ascii_case("none") {
                    continue;
                }
                let (user, host, _) = parse_jump(hop).map_err(ConfigError)?;
                if let Some(user) = user.filter(|u| !safe_user(u)) {
                    return Err(bad_user(&user));
                }
                if !safe_host(&host) {
                    return Err(ConfigError(format!(
                        "{}: hostname contains invalid characters",
                        for_terminal(host.as_bytes())
                    )));
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// `%C`: a hash of the connection's identity, as ssh computes it.
fn connection_hash(
    local_host: &str,
    host: &str,
    port: u16,
    user: &str,
    jump: Option<&str>,
) -> String {
    use sha1::{Digest, Sha1};
    let mut hasher = Sha1::new();
    hasher.update(format!(
        "{local_host}{host}{port}{user}{}",
        jump.unwrap_or_default()
    ));
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// ssh refuses a user config that others could have written.
fn check_permissions(path: &Path) -> Result<(), ConfigError> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    let uid = nix::unistd::getuid().as_raw();
    if (meta.uid() != 0 && meta.uid() != uid) || meta.mode() & 0o022 != 0 {
        return Err(ConfigError(format!(
            "Bad owner or permissions on {}",
            path.display()
        )));
    }
    Ok(())
}

/// `[user@]host[:port]` of a ProxyJump hop (also `ssh://...`).
pub fn parse_jump(hop: &str) -> Result<(Option<String>, String, Option<u16>), String> {
    let hop = hop.strip_prefix("ssh://").unwrap_or(hop);
    let (user, rest) = match hop.rsplit_once('@') {
        Some((user, rest)) => (Some(user.to_owned()), rest),
        None => (None, hop),
    };
    let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
        let (host, after) = inner
            .split_once(']')
            .ok_or_else(|| format!("bad ProxyJump host {hop}"))?;
        (host.to_owned(), after.strip_prefix(':'))
    } else {
        match rest.rsplit_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (rest.to_owned(), None),
        }
    };
    let port = match port {
        Some(text) => Some(
            crate::operand::parse_port(text).ok_or_else(|| format!("bad ProxyJump port {text}"))?,
        ),
        None => None,
    };
    if host.is_empty() {
        return Err(format!("bad ProxyJump host {hop}"));
    }
    Ok((user, host, port))
}

/// The lines of a file read as bytes, each as text (bytes that are not
/// UTF-8 become U+FFFD), so that one bad byte costs its line at most.
pub fn text_lines(bytes: &[u8]) -> impl Iterator<Item = std::borrow::Cow<'_, str>> {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    bytes
        .split(|&b| b == b'\n')
        .map(|line| String::from_utf8_lossy(line.strip_suffix(b"\r").unwrap_or(line)))
}

/// A config line: its keyword, its arguments, and the text after the
/// keyword as written (for ProxyCommand).
type SplitLine = (String, Vec<String>, String);

/// What ssh_config(5) takes as whitespace between a keyword and its
/// value (ssh's WHITESPACE); between arguments only blanks count.
const SPACE: [char; 4] = [' ', '\t', '\r', '\n'];

/// Splits a config line as ssh does: the keyword ends at whitespace or an
/// `=` (`Keyword value`, `Keyword=value`, `Keyword = value`), and the rest
/// is split by [`argv_split`]. `None` for a blank or comment line.
fn split_line(line: &str) -> Result<Option<SplitLine>, String> {
    let line = line
        .trim_end_matches([' ', '\t', '\r', '\n', '\x0c'])
        .trim_start_matches(SPACE);
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let keyword_end = line
        .find(|c: char| SPACE.contains(&c) || c == '=')
        .unwrap_or(line.len());
    let keyword = line[..keyword_end].to_owned();
    let mut rest = line[keyword_end..].trim_start_matches(SPACE);
    if let Some(after) = rest.strip_prefix('=') {
        rest = after.trim_start_matches(SPACE);
    }
    let args = argv_split(rest)?;
    Ok(Some((keyword, args, rest.to_owned())))
}

/// ssh's `argv_split`: words separated by blanks (space and tab only);
/// single and double quotes group (and join: `"a"b` is `ab`); a backslash
/// escapes a quote, a backslash, or (outside quotes) a space, and is
/// itself otherwise; `#` at the start of a word ends the line.
fn argv_split(text: &str) -> Result<Vec<String>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut args = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == ' ' || chars[i] == '\t' {
            i += 1;
            continue;
        }
        if chars[i] == '#' {
            break;
        }
        let mut arg = String::new();
        let mut quote: Option<char> = None;
        while let Some(&c) = chars.get(i) {
            match c {
                '\\' => match chars.get(i + 1) {
                    Some(&next @ ('\'' | '"' | '\\')) => {
                        arg.push(next);
                        i += 1;
                    }
                    Some(' ') if quote.is_none() => {
                        arg.push(' ');
                        i += 1;
                    }
                    _ => arg.push('\\'),
                },
                ' ' | '\t' if quote.is_none() => break,
                '"' | '\'' if quote.is_none() => quote = Some(c),
                _ if quote == Some(c) => quote = None,
                _ => arg.push(c),
            }
            i += 1;
        }
        if quote.is_some() {
            return Err("invalid quotes".into());
        }
        args.push(arg);
    }
    Ok(args)
}

#[cfg(test)]
mod tests;
