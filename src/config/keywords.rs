//! ssh_config keywords: the ones rscp applies, the ones it accepts and
//! ignores, and how each value is parsed.

use std::time::Duration;

use crate::operand::parse_port;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrictHostKeyChecking {
    Yes,
    Ask,
    AcceptNew,
    /// `no` or `off`.
    No,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressFamily {
    Any,
    Inet,
    Inet6,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Quiet,
    Fatal,
    Error,
    Info,
    Verbose,
    Debug1,
    Debug2,
    Debug3,
}

/// A keyword rscp knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    HostName,
    Port,
    User,
    IdentityFile,
    IdentitiesOnly,
    IdentityAgent,
    CertificateFile,
    PubkeyAuthentication,
    PasswordAuthentication,
    KbdInteractiveAuthentication,
    PreferredAuthentications,
    BatchMode,
    NumberOfPasswordPrompts,
    StrictHostKeyChecking,
    UserKnownHostsFile,
    GlobalKnownHostsFile,
    HashKnownHosts,
    HostKeyAlias,
    HostKeyAlgorithms,
    Ciphers,
    Macs,
    KexAlgorithms,
    Compression,
    ConnectTimeout,
    ConnectionAttempts,
    ServerAliveInterval,
    ServerAliveCountMax,
    AddressFamily,
    BindAddress,
    ProxyJump,
    ProxyCommand,
    ForwardAgent,
    LogLevel,
    /// An ssh keyword that has no effect on a copy (or that rscp does not
    /// implement); accepted, noted under `-v`.
    Ignored,
}

/// Every other keyword of OpenSSH's ssh_config(5), lowercased.
const IGNORED: &[&str] = &[
    "addkeystoagent",
    "bindinterface",
    "canonicaldomains",
    "canonicalizefallbacklocal",
    "canonicalizehostname",
    "canonicalizemaxdots",
    "canonicalizepermittedcnames",
    "casignaturealgorithms",
    "channeltimeout",
    "checkhostip",
    "clearallforwardings",
    "controlmaster",
    "controlpath",
    "controlpersist",
    "dynamicforward",
    "enableescapecommandline",
    "enablesshkeysign",
    "escapechar",
    "exitonforwardfailure",
    "fingerprinthash",
    "forkafterauthentication",
    "forwardx11",
    "forwardx11timeout",
    "forwardx11trusted",
    "gatewayports",
    "gssapiauthentication",
    "gssapidelegatecredentials",
    "gssapikeyexchange",
    "gssapiclientidentity",
    "gssapiserveridentity",
    "gssapirenewalforcesrekey",
    "gssapitrustdns",
    "gssapikexalgorithms",
    "hostbasedacceptedalgorithms",
    "hostbasedauthentication",
    "hostbasedkeytypes",
    "ipqos",
    "kbdinteractivedevices",
    "knownhostscommand",
    "localcommand",
    "localforward",
    "logverbose",
    "nohostauthenticationforlocalhost",
    "obscurekeystroketiming",
    "permitlocalcommand",
    "permitremoteopen",
    "pkcs11provider",
    "protocol",
    "proxyusefdpass",
    "pubkeyacceptedalgorithms",
    "pubkeyacceptedkeytypes",
    "rekeylimit",
    "remotecommand",
    "remoteforward",
    "requesttty",
    "requiredrsasize",
    "revokedhostkeys",
    "securitykeyprovider",
    "sendenv",
    "sessiontype",
    "setenv",
    "smartcarddevice",
    "stdinnull",
    "streamlocalbindmask",
    "streamlocalbindunlink",
    "syslogfacility",
    "tag",
    "tcpkeepalive",
    "keepalive",
    "tunnel",
    "tunneldevice",
    "updatehostkeys",
    "usekeychain",
    "userknownhostsfile2",
    "globalknownhostsfile2",
    "verifyhostkeydns",
    "visualhostkey",
    "xauthlocation",
    "identityfile2",
    "useprivilegedport",
    "rhostsrsaauthentication",
    "rsaauthentication",
    "useroaming",
    "cipher",
    "fallbacktorsh",
    "usersh",
    "skeyauthentication",
    "tisauthentication",
    "dsaauthentication",
    "compressionlevel",
    "warnweakcrypto",
    "refuseconnection",
    "persourcemaxstartups",
    "persourcenetblocksize",
];

impl Keyword {
    pub fn lookup(lower: &str) -> Option<Keyword> {
        use Keyword::*;
        Some(match lower {
            "hostname" => HostName,
            "port" => Port,
            "user" => User,
            "identityfile" => IdentityFile,
            "identitiesonly" => IdentitiesOnly,
            "identityagent" => IdentityAgent,
            "certificatefile" => CertificateFile,
            "pubkeyauthentication" => PubkeyAuthentication,
            "passwordauthentication" => PasswordAuthentication,
            "kbdinteractiveauthentication" | "challengeresponseauthentication" => {
                KbdInteractiveAuthentication
            }
            "preferredauthentications" => PreferredAuthentications,
            "batchmode" => BatchMode,
            "numberofpasswordprompts" => NumberOfPasswordPrompts,
            "stricthostkeychecking" => StrictHostKeyChecking,
            "userknownhostsfile" => UserKnownHostsFile,
            "globalknownhostsfile" => GlobalKnownHostsFile,
            "hashknownhosts" => HashKnownHosts,
            "hostkeyalias" => HostKeyAlias,
            "hostkeyalgorithms" => HostKeyAlgorithms,
            "ciphers" => Ciphers,
            "macs" => Macs,
            "kexalgorithms" => KexAlgorithms,
            "compression" => Compression,
            "connecttimeout" => ConnectTimeout,
            "connectionattempts" => ConnectionAttempts,
            "serveraliveinterval" => ServerAliveInterval,
            "serveralivecountmax" => ServerAliveCountMax,
            "addressfamily" => AddressFamily,
            "bindaddress" => BindAddress,
            "proxyjump" => ProxyJump,
            "proxycommand" => ProxyCommand,
            "forwardagent" => ForwardAgent,
            "loglevel" => LogLevel,
            other if IGNORED.contains(&other) => Ignored,
            _ => return None,
        })
    }
}

/// A parsed value, before it is known whether it applies.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Text(String),
    Flag(bool),
    Number(u32),
    Port(u16),
    Time(Option<Duration>),
    List(Vec<String>),
    Strict(StrictHostKeyChecking),
    Family(AddressFamily),
    Level(LogLevel),
    Nothing,
}

/// Parses the value of `keyword`. `rest` is the line after the keyword,
/// for the keywords that take it whole (ProxyCommand).
fn parse(keyword: Keyword, args: &[String], rest: &str) -> Result<Value, String> {
    use Keyword as K;
    let one = || -> Result<&str, String> {
        match args {
            [] => Err("Missing argument.".into()),
            [only] => Ok(only.as_str()),
            [_, extra, ..] => Err(format!("garbage at end of line \"{extra}\".")),
        }
    };
    Ok(match keyword {
        K::HostName
        | K::User
        | K::IdentityFile
        | K::IdentityAgent
        | K::CertificateFile
        | K::PreferredAuthentications
        | K::HostKeyAlias
        | K::HostKeyAlgorithms
        | K::Ciphers
        | K::Macs
        | K::KexAlgorithms
        | K::BindAddress
        | K::ProxyJump => Value::Text(one()?.to_owned()),
        K::ProxyCommand => {
            if rest.trim().is_empty() {
                return Err("Missing argument.".into());
            }
            Value::Text(rest.trim().to_owned())
        }
        K::Port => Value::Port(parse_port(one()?).ok_or("Badly formatted port number.")?),
        K::IdentitiesOnly
        | K::PubkeyAuthentication
        | K::PasswordAuthentication
        | K::KbdInteractiveAuthentication
        | K::BatchMode
        | K::HashKnownHosts
        | K::Compression => Value::Flag(flag(one()?)?),
        // A path or variable instead of yes/no names an agent to forward.
        K::ForwardAgent => Value::Flag(flag(one()?).unwrap_or(true)),
        K::NumberOfPasswordPrompts | K::ConnectionAttempts | K::ServerAliveCountMax => {
            Value::Number(integer(one()?)?)
        }
        K::ConnectTimeout | K::ServerAliveInterval => {
            let text = one()?;
            if text.eq_ignore_ascii_case("none") {
                Value::Time(None)
            } else {
                Value::Time(Some(
                    time(text).ok_or_else(|| format!("invalid time value \"{text}\"."))?,
                ))
            }
        }
        K::UserKnownHostsFile | K::GlobalKnownHostsFile => {
            if args.is_empty() {
                return Err("Missing argument.".into());
            }
            if args.len() == 1 && args[0].eq_ignore_ascii_case("none") {
                Value::List(Vec::new())
            } else {
                Value::List(args.to_vec())
            }
        }
        K::StrictHostKeyChecking => Value::Strict(match one()?.to_ascii_lowercase().as_str() {
            "yes" | "true" => StrictHostKeyChecking::Yes,
            "ask" => StrictHostKeyChecking::Ask,
            "accept-new" => StrictHostKeyChecking::AcceptNew,
            "no" | "false" | "off" => StrictHostKeyChecking::No,
            other => return Err(format!("unsupported option \"{other}\".")),
        }),
        K::AddressFamily => Value::Family(match one()?.to_ascii_lowercase().as_str() {
            "any" => AddressFamily::Any,
            "inet" => AddressFamily::Inet,
            "inet6" => AddressFamily::Inet6,
            other => return Err(format!("unsupported option \"{other}\".")),
        }),
        K::LogLevel => Value::Level(match one()?.to_ascii_uppercase().as_str() {
            "QUIET" => LogLevel::Quiet,
            "FATAL" => LogLevel::Fatal,
            "ERROR" => LogLevel::Error,
            "INFO" => LogLevel::Info,
            "VERBOSE" => LogLevel::Verbose,
            "DEBUG" | "DEBUG1" => LogLevel::Debug1,
            "DEBUG2" => LogLevel::Debug2,
            "DEBUG3" => LogLevel::Debug3,
            other => return Err(format!("unsupported log level \"{other}\".")),
        }),
        K::Ignored => Value::Nothing,
    })
}

/// Whether the value of a line in a block that does not apply parses.
pub fn check(keyword: Keyword, args: &[String], rest: &str) -> Result<(), String> {
    parse(keyword, args, rest).map(drop)
}

fn flag(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err(format!("unsupported option \"{text}\".")),
    }
}

/// ssh's integers (`strtonum` from 0 to INT_MAX), with its words.
fn integer(text: &str) -> Result<u32, String> {
    let digits = text.trim_start();
    let (negative, digits) = match digits.as_bytes().first() {
        Some(b'-') => (true, &digits[1..]),
        Some(b'+') => (false, &digits[1..]),
        _ => (false, digits),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("integer value invalid.".into());
    }
    let zero = digits.bytes().all(|b| b == b'0');
    if negative && !zero {
        return Err("integer value too small.".into());
    }
    digits
        .parse::<u32>()
        .ok()
        .filter(|&n| n <= i32::MAX as u32)
        .ok_or_else(|| "integer value too large.".into())
}

/// ssh's time format: seconds, or numbers with s/m/h/d/w units ("1h30m"),
/// at most INT_MAX seconds in all (as ssh's `convtime`).
fn time(text: &str) -> Option<Duration> {
    const MOST: u64 = i32::MAX as u64;
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            'w' => 604800,
            _ => return None,
        };
        total = total.checked_add(number.parse::<u64>().ok()?.checked_mul(unit)?)?;
        number.clear();
    }
    if !number.is_empty() {
        total = total.checked_add(number.parse().ok()?)?;
    }
    (!text.is_empty() && total <= MOST).then_some(Duration::from_secs(total))
}

/// The values obtained so far; `None` is "not set yet".
#[derive(Debug, Clone, Default)]
pub struct Raw {
    pub hostname: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub identity_files: Vec<String>,
    pub identities_only: Option<bool>,
    pub identity_agent: Option<String>,
    pub certificate_files: Vec<String>,
    pub pubkey_authentication: Option<bool>,
    pub password_authentication: Option<bool>,
    pub kbd_interactive_authentication: Option<bool>,
    pub preferred_authentications: Option<String>,
    pub batch_mode: Option<bool>,
    pub number_of_password_prompts: Option<u32>,
    pub strict_host_key_checking: Option<StrictHostKeyChecking>,
    pub user_known_hosts_files: Option<Vec<String>>,
    pub global_known_hosts_files: Option<Vec<String>>,
    pub hash_known_hosts: Option<bool>,
    pub host_key_alias: Option<String>,
    pub host_key_algorithms: Option<String>,
    pub ciphers: Option<String>,
    pub macs: Option<String>,
    pub kex_algorithms: Option<String>,
    pub compression: Option<bool>,
    pub connect_timeout: Option<Duration>,
    connect_timeout_set: bool,
    pub connection_attempts: Option<u32>,
    pub server_alive_interval: Option<Duration>,
    server_alive_interval_set: bool,
    pub server_alive_count_max: Option<u32>,
    pub address_family: Option<AddressFamily>,
    pub bind_address: Option<String>,
    pub proxy_jump: Option<String>,
    pub proxy_command: Option<String>,
    pub forward_agent: Option<bool>,
    pub log_level: Option<LogLevel>,
    /// Ignored keywords that were set, as written.
    pub ignored: Vec<String>,
}

impl Raw {
    /// Parses and, if not set yet, stores a value.
    pub fn set(
        &mut self,
        keyword: Keyword,
        name: &str,
        args: &[String],
        rest: &str,
    ) -> Result<(), String> {
        use Keyword as K;
        let value = parse(keyword, args, rest)?;
        fn first<T>(slot: &mut Option<T>, value: T) {
            if slot.is_none() {
                *slot = Some(value);
            }
        }
        match (keyword, value) {
            (K::HostName, Value::Text(v)) => first(&mut self.hostname, v),
            (K::User, Value::Text(v)) => first(&mut self.user, v),
            (K::IdentityFile, Value::Text(v)) => self.identity_files.push(v),
            (K::CertificateFile, Value::Text(v)) => self.certificate_files.push(v),
            (K::IdentityAgent, Value::Text(v)) => first(&mut self.identity_agent, v),
            (K::PreferredAuthentications, Value::Text(v)) => {
                first(&mut self.preferred_authentications, v)
            }
            (K::HostKeyAlias, Value::Text(v)) => first(&mut self.host_key_alias, v),
            (K::HostKeyAlgorithms, Value::Text(v)) => first(&mut self.host_key_algorithms, v),
            (K::Ciphers, Value::Text(v)) => first(&mut self.ciphers, v),
            (K::Macs, Value::Text(v)) => first(&mut self.macs, v),
            (K::KexAlgorithms, Value::Text(v)) => first(&mut self.kex_algorithms, v),
            (K::BindAddress, Value::Text(v)) => first(&mut self.bind_address, v),
            (K::ProxyJump, Value::Text(v)) => first(&mut self.proxy_jump, v),
            (K::ProxyCommand, Value::Text(v)) => first(&mut self.proxy_command, v),
            (K::Port, Value::Port(v)) => first(&mut self.port, v),
            (K::IdentitiesOnly, Value::Flag(v)) => first(&mut self.identities_only, v),
            (K::PubkeyAuthentication, Value::Flag(v)) => first(&mut self.pubkey_authentication, v),
            (K::PasswordAuthentication, Value::Flag(v)) => {
                first(&mut self.password_authentication, v)
            }
            (K::KbdInteractiveAuthentication, Value::Flag(v)) => {
                first(&mut self.kbd_interactive_authentication, v)
            }
            (K::BatchMode, Value::Flag(v)) => first(&mut self.batch_mode, v),
            (K::HashKnownHosts, Value::Flag(v)) => first(&mut self.hash_known_hosts, v),
            (K::Compression, Value::Flag(v)) => first(&mut self.compression, v),
            (K::ForwardAgent, Value::Flag(v)) => first(&mut self.forward_agent, v),
            (K::NumberOfPasswordPrompts, Value::Number(v)) => {
                first(&mut self.number_of_password_prompts, v)
            }
            (K::ConnectionAttempts, Value::Number(v)) => first(&mut self.connection_attempts, v),
            (K::ServerAliveCountMax, Value::Number(v)) => {
                first(&mut self.server_alive_count_max, v)
            }
            (K::ConnectTimeout, Value::Time(v)) => {
                if !self.connect_timeout_set {
                    self.connect_timeout_set = true;
                    self.connect_timeout = v;
                }
            }
            (K::ServerAliveInterval, Value::Time(v)) => {
                if !self.server_alive_interval_set {
                    self.server_alive_interval_set = true;
                    self.server_alive_interval = v;
                }
            }
            (K::UserKnownHostsFile, Value::List(v)) => first(&mut self.user_known_hosts_files, v),
            (K::GlobalKnownHostsFile, Value::List(v)) => {
                first(&mut self.global_known_hosts_files, v)
            }
            (K::StrictHostKeyChecking, Value::Strict(v)) => {
                first(&mut self.strict_host_key_checking, v)
            }
            (K::AddressFamily, Value::Family(v)) => first(&mut self.address_family, v),
            (K::LogLevel, Value::Level(v)) => first(&mut self.log_level, v),
            (K::Ignored, _) => self.ignored.push(name.to_owned()),
            // `parse` gives each keyword its own kind of value.
            (keyword, value) => return Err(format!("internal: {keyword:?} got {value:?}")),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(time("10"), Some(Duration::from_secs(10)));
        assert_eq!(time("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(time("2w"), Some(Duration::from_secs(1_209_600)));
        assert_eq!(time("5x"), None);
        assert_eq!(time(""), None);
        // ssh's limit is INT_MAX seconds (checked with ssh -G here).
        assert_eq!(time("2147483647"), Some(Duration::from_secs(2_147_483_647)));
        assert_eq!(time("35791394m"), Some(Duration::from_secs(2_147_483_640)));
        assert_eq!(time("2147483648"), None);
        assert_eq!(time("35791395m"), None);
        assert_eq!(time("3551w"), None);
        assert_eq!(time("99999999999999999999999"), None);
        assert_eq!(time("9999999999999999999w"), None);
    }

    #[test]
    fn integers_as_ssh_reads_them() {
        assert_eq!(integer("5"), Ok(5));
        assert_eq!(integer(" +5"), Ok(5));
        assert_eq!(integer("-0"), Ok(0));
        assert_eq!(integer("2147483647"), Ok(2_147_483_647));
        assert_eq!(
            integer("2147483648"),
            Err("integer value too large.".into())
        );
        assert_eq!(
            integer("99999999999"),
            Err("integer value too large.".into())
        );
        assert_eq!(integer("-1"), Err("integer value too small.".into()));
        assert_eq!(integer("0x10"), Err("integer value invalid.".into()));
        assert_eq!(integer("abc"), Err("integer value invalid.".into()));
        assert_eq!(integer(""), Err("integer value invalid.".into()));
    }

    #[test]
    fn flags_and_errors() {
        assert_eq!(flag("YES"), Ok(true));
        assert_eq!(flag("false"), Ok(false));
        assert!(flag("maybe").is_err());
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check(Keyword::Port, &args(&["notaport"]), "").is_err());
        assert!(check(Keyword::Port, &args(&[]), "").is_err());
        assert!(check(Keyword::User, &args(&["a", "b"]), "").is_err());
        assert!(check(Keyword::StrictHostKeyChecking, &args(&["accept-new"]), "").is_ok());
    }
}
