//! Source and target operands: which are local, which are remote, and the
//! parts of a remote one. The rules are scp's (see SCP-REFERENCE.md).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use crate::escape::for_terminal;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    Local(OsString),
    Remote(Remote),
}

/// A `[user@]host:path` or `scp://` operand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub user: Option<String>,
    /// Without the brackets of an IPv6 literal.
    pub host: String,
    /// Only `scp://` URIs carry a port; otherwise `-P` (or ssh's own) applies.
    pub port: Option<u16>,
    /// Handed to the remote shell unquoted; `.` (the login directory) when empty.
    pub path: OsString,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperandError {
    /// An `scp://` operand that does not parse (scp: "invalid uri").
    InvalidUri(OsString),
    /// A user name with characters a shell or ssh could misread (scp's
    /// own check).
    InvalidUser(Vec<u8>),
    /// A user name with shell syntax in it (ssh's check since 9.6).
    UnsafeUser(Vec<u8>),
    /// An empty or undecodable host name.
    InvalidHost(OsString),
    /// A host name with shell syntax in it (ssh's check since 9.6).
    UnsafeHost(String),
}

impl fmt::Display for OperandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OperandError::InvalidUri(arg) => {
                write!(f, "{}: invalid uri", for_terminal(arg.as_bytes()))
            }
            OperandError::InvalidUser(user) => {
                write!(f, "{}: invalid user name", for_terminal(user))
            }
            OperandError::UnsafeUser(user) => {
                write!(
                    f,
                    "{}: remote username contains invalid characters",
                    for_terminal(user)
                )
            }
            OperandError::InvalidHost(arg) => {
                write!(f, "{}: invalid host name", for_terminal(arg.as_bytes()))
            }
            OperandError::UnsafeHost(host) => {
                write!(
                    f,
                    "{}: hostname contains invalid characters",
                    for_terminal(host.as_bytes())
                )
            }
        }
    }
}

impl std::error::Error for OperandError {}

/// Classifies one operand.
pub fn parse(arg: &OsStr) -> Result<Operand, OperandError> {
    let bytes = arg.as_bytes();
    let remote = if let Some(rest) = bytes.strip_prefix(b"scp://") {
        parse_uri(rest).ok_or_else(|| OperandError::InvalidUri(arg.to_owned()))?
    } else {
        match remote_colon(bytes) {
            None => return Ok(Operand::Local(arg.to_owned())),
            Some(colon) => parse_user_host_path(arg, colon)?,
        }
    };
    Ok(Operand::Remote(remote))
}

/// Whether `arg` names a remote file (scp's `colon()`): a `:` before any
/// `/`, not at the start; `[...]:` (or `user@[...]:`) for IPv6 literals.
/// Returns the index of the `:` that ends the host part.
fn remote_colon(s: &[u8]) -> Option<usize> {
    if s.first() == Some(&b':') {
        return None;
    }
    let mut in_brackets = s.first() == Some(&b'[');
    for (i, &c) in s.iter().enumerate() {
        let next = s.get(i + 1).copied();
        if c == b'@' && next == Some(b'[') {
            in_brackets = true;
        }
        if c == b']' && next == Some(b':') && in_brackets {
            return Some(i + 1);
        }
        if c == b':' && !in_brackets {
            return Some(i);
        }
        if c == b'/' {
            return None;
        }
    }
    None
}

fn parse_user_host_path(arg: &OsStr, colon: usize) -> Result<Remote, OperandError> {
    let bytes = arg.as_bytes();
    let (login, path) = (&bytes[..colon], &bytes[colon + 1..]);
    // The user part ends at the last '@', so user names may contain '@'.
    let (user, host) = match login.iter().rposition(|&b| b == b'@') {
        Some(at) => (
            Some(&login[..at]).filter(|u| !u.is_empty()),
            &login[at + 1..],
        ),
        None => (None, login),
    };
    let host = strip_brackets(host);
    let host = std::str::from_utf8(host)
        .ok()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| OperandError::InvalidHost(arg.to_owned()))?;
    let user = user.map(checked_user).transpose()?;
    if !safe_host(host) {
        return Err(OperandError::UnsafeHost(host.to_owned()));
    }
    Ok(Remote {
        user,
        host: host.to_owned(),
        port: None,
        path: path_or_dot(path.to_vec()),
    })
}

/// `scp://[user[;params]@]host[:port][/path]`, given what follows `scp://`.
fn parse_uri(rest: &[u8]) -> Option<Remote> {
    let (user, rest) = match rest.iter().position(|&b| b == b'@') {
        Some(at) => {
            let userinfo = &rest[..at];
            // Connection parameters after ';' are ignored, as ssh does.
            let name = userinfo.split(|&b| b == b';').next().unwrap_or_default();
            if name.is_empty() {
                return None;
            }
            (Some(percent_decode(name)?), &rest[at + 1..])
        }
        None => (None, rest),
    };
    let (host, delimiter, rest) = split_uri_host(rest)?;
    let host = valid_domain(host)?;
    let mut rest = rest;
    let mut port = None;
    if delimiter == Some(b':') {
        let (port_text, after) = match rest.iter().position(|&b| b == b'/') {
            Some(slash) => (&rest[..slash], &rest[slash + 1..]),
            None => (rest, &b""[..]),
        };
        port = Some(parse_port(std::str::from_utf8(port_text).ok()?)?);
        rest = after;
    }
    let path = if rest.is_empty() {
        Vec::new()
    } else {
        percent_decode(rest)?
    };
    let user = match user {
        Some(u) => Some(checked_user(&u).ok()?),
        None => None,
    };
    Some(Remote {
        user,
        host,
        port,
        path: path_or_dot(path),
    })
}

/// Splits the authority's host from what follows, at the first ':' or '/'
/// (or after a bracketed literal, which `valid_domain` will then refuse).
fn split_uri_host(s: &[u8]) -> Option<(&[u8], Option<u8>, &[u8])> {
    let end = if s.first() == Some(&b'[') {
        s.iter().position(|&b| b == b']')? + 1
    } else {
        s.iter()
            .position(|&b| b == b':' || b == b'/')
            .unwrap_or(s.len())
    };
    match s.get(end) {
        None => Some((&s[..end], None, &b""[..])),
        Some(&d) if d == b':' || d == b'/' => Some((&s[..end], Some(d), &s[end + 1..])),
        Some(_) => None,
    }
}

/// ssh's host name rule for URIs: letters, digits, '-', '_' and single
/// dots, starting with a letter or digit; a trailing dot is dropped.
fn valid_domain(host: &[u8]) -> Option<String> {
    let first = *host.first()?;
    if !first.is_ascii_alphanumeric() || host.windows(2).any(|w| w == b"..") {
        return None;
    }
    if !host
        .iter()
        .all(|&c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-' || c == b'_')
    {
        return None;
    }
    let host = host.strip_suffix(b".").unwrap_or(host);
    String::from_utf8(host.to_vec()).ok()
}

fn strip_brackets(host: &[u8]) -> &[u8] {
    match host {
        [b'[', inner @ .., b']'] => inner,
        _ => host,
    }
}

fn path_or_dot(path: Vec<u8>) -> OsString {
    if path.is_empty() {
        OsString::from(".")
    } else {
        OsString::from_vec(path)
    }
}

/// URI decoding as ssh does it ('+' is a space); `%00` is refused.
fn percent_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                let text = std::str::from_utf8(hex).ok()?;
                if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                let byte = u8::from_str_radix(text, 16).ok()?;
                if byte == 0 {
                    return None;
                }
                out.push(byte);
                i += 2;
            }
            other => out.push(other),
        }
        i += 1;
    }
    Some(out)
}

/// scp's `okname` (no bytes >= 0x80, quotes, backquote, space or '#'),
/// control characters, then ssh's rule for user names from the command
/// line ([`safe_user`]).
fn checked_user(user: &[u8]) -> Result<String, OperandError> {
    let bad = |c: u8| c >= 0x80 || c.is_ascii_control() || b"'\"` #".contains(&c);
    if user.iter().any(|&c| bad(c)) {
        return Err(OperandError::InvalidUser(user.to_vec()));
    }
    // Every byte is ASCII here.
    let user = String::from_utf8_lossy(user).into_owned();
    if !safe_user(&user) {
        return Err(OperandError::UnsafeUser(user.into_bytes()));
    }
    Ok(user)
}

/// ssh's rule (since 9.6) for a host name given on the command line, which
/// `%h` and `%n` may carry into a shell (ProxyCommand, Match exec): no
/// leading `-`, no blanks or control characters, none of
/// `` '`"$\;&<>|(){}, ``.
pub fn safe_host(host: &str) -> bool {
    !host.starts_with('-')
        && !host
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "'`\"$\\;&<>|(){},".contains(c))
}

/// ssh's rule (since 9.6, with 10.1's control characters) for a user name
/// given on the command line, which `%r` may carry into a shell: no
/// leading `-`, no control characters, none of `` '`";&<>|(){} ``, no `-`
/// after a blank, no `\` at the end.
pub fn safe_user(user: &str) -> bool {
    let bytes = user.as_bytes();
    !user.starts_with('-')
        && !user.ends_with('\\')
        && !bytes.iter().enumerate().any(|(i, &c)| {
            c.is_ascii_control()
                || b"'`\";&<>|(){}".contains(&c)
                || (c.is_ascii_whitespace() && bytes.get(i + 1) == Some(&b'-'))
        })
}

/// A port as ssh's `a2port` takes it: 1-65535, or a TCP service name.
pub fn parse_port(text: &str) -> Option<u16> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse::<u16>().ok().filter(|&p| p != 0);
    }
    service_port(text, &std::fs::read("/etc/services").ok()?)
}

/// Looks `name` up in an `/etc/services` file (tcp entries), line by line.
fn service_port(name: &str, services: &[u8]) -> Option<u16> {
    if name.is_empty() {
        return None;
    }
    crate::config::text_lines(services).find_map(|line| {
        let line = line.split('#').next().unwrap_or_default();
        let mut fields = line.split_whitespace();
        let service = fields.next()?;
        let (port, protocol) = fields.next()?.split_once('/')?;
        let named = service == name || fields.any(|alias| alias == name);
        (named && protocol == "tcp")
            .then(|| port.parse::<u16>().ok())
            .flatten()
            .filter(|&p| p != 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(user: Option<&str>, host: &str, port: Option<u16>, path: &str) -> Operand {
        Operand::Remote(Remote {
            user: user.map(str::to_owned),
            host: host.to_owned(),
            port,
            path: OsString::from(path),
        })
    }

    fn local(path: &str) -> Operand {
        Operand::Local(OsString::from(path))
    }

    #[test]
    fn operand_table() {
        let uri = |s: &str| OperandError::InvalidUri(OsString::from(s));
        let user = |s: &[u8]| OperandError::InvalidUser(s.to_vec());
        let unsafe_user = |s: &[u8]| OperandError::UnsafeUser(s.to_vec());
        let unsafe_host = |s: &str| OperandError::UnsafeHost(s.to_owned());
        let cases: Vec<(&str, Result<Operand, OperandError>)> = vec![
            // Local paths.
            ("file", Ok(local("file"))),
            ("/abs/path", Ok(local("/abs/path"))),
            ("./a:b", Ok(local("./a:b"))),
            ("dir/x:y", Ok(local("dir/x:y"))),
            (":leading", Ok(local(":leading"))),
            ("[::1]", Ok(local("[::1]"))),
            ("[a/b]:c", Ok(local("[a/b]:c"))),
            ("-", Ok(local("-"))),
            // host:path forms.
            ("host:file", Ok(remote(None, "host", None, "file"))),
            ("host:", Ok(remote(None, "host", None, "."))),
            ("host:/abs", Ok(remote(None, "host", None, "/abs"))),
            ("host:a:b", Ok(remote(None, "host", None, "a:b"))),
            ("user@host:f", Ok(remote(Some("user"), "host", None, "f"))),
            ("a@b@host:f", Ok(remote(Some("a@b"), "host", None, "f"))),
            ("@host:f", Ok(remote(None, "host", None, "f"))),
            ("host:~/x y", Ok(remote(None, "host", None, "~/x y"))),
            ("host:*.txt", Ok(remote(None, "host", None, "*.txt"))),
            // IPv6 literals.
            ("[::1]:f", Ok(remote(None, "::1", None, "f"))),
            ("[::1]:", Ok(remote(None, "::1", None, "."))),
            (
                "u@[fe80::1%eth0]:/t",
                Ok(remote(Some("u"), "fe80::1%eth0", None, "/t")),
            ),
            // URIs.
            ("scp://host", Ok(remote(None, "host", None, "."))),
            ("scp://host/", Ok(remote(None, "host", None, "."))),
            ("scp://host/p", Ok(remote(None, "host", None, "p"))),
            ("scp://host//abs", Ok(remote(None, "host", None, "/abs"))),
            (
                "scp://u@host:2222/p",
                Ok(remote(Some("u"), "host", Some(2222), "p")),
            ),
            (
                "scp://u;fp=x@host/p",
                Ok(remote(Some("u"), "host", None, "p")),
            ),
            ("scp://host:22", Ok(remote(None, "host", Some(22), "."))),
            (
                "scp://host.example./p",
                Ok(remote(None, "host.example", None, "p")),
            ),
            (
                "scp://host/a%20b+c",
                Ok(remote(None, "host", None, "a b c")),
            ),
            ("scp://us%65r@h/x", Ok(remote(Some("user"), "h", None, "x"))),
            ("scp://h/%2Fetc", Ok(remote(None, "h", None, "/etc"))),
            ("scp://[::1]/x", Err(uri("scp://[::1]/x"))),
            ("scp://[::1]:22/x", Err(uri("scp://[::1]:22/x"))),
            ("scp://@host/x", Err(uri("scp://@host/x"))),
            ("scp://host:0/x", Err(uri("scp://host:0/x"))),
            ("scp://host:99999/x", Err(uri("scp://host:99999/x"))),
            ("scp://host:/x", Err(uri("scp://host:/x"))),
            ("scp://host/%zz", Err(uri("scp://host/%zz"))),
            ("scp://host/%00", Err(uri("scp://host/%00"))),
            ("scp://-host/x", Err(uri("scp://-host/x"))),
            ("scp://a..b/x", Err(uri("scp://a..b/x"))),
            ("scp://", Err(uri("scp://"))),
            ("scp://b%20c@h/x", Err(uri("scp://b%20c@h/x"))),
            // User names scp refuses.
            ("b c@host:x", Err(user(b"b c"))),
            ("it's@host:x", Err(user(b"it's"))),
            ("a\"b@host:x", Err(user(b"a\"b"))),
            ("a`b@host:x", Err(user(b"a`b"))),
            ("a#b@host:x", Err(user(b"a#b"))),
            ("\u{e9}@host:x", Err(user("\u{e9}".as_bytes()))),
            ("a\nb@host:x", Err(user(b"a\nb"))),
            // ... and those ssh refuses (shell syntax, for %r).
            ("a;b@host:x", Err(unsafe_user(b"a;b"))),
            ("a|b@host:x", Err(unsafe_user(b"a|b"))),
            ("$(id)@host:x", Err(unsafe_user(b"$(id)"))),
            (
                "-oProxyCommand=x@host:x",
                Err(unsafe_user(b"-oProxyCommand=x")),
            ),
            ("a\\@host:x", Err(unsafe_user(b"a\\"))),
            ("a$b@host:x", Ok(remote(Some("a$b"), "host", None, "x"))),
            ("a\\b@host:x", Ok(remote(Some("a\\b"), "host", None, "x"))),
            // Host names ssh refuses (shell syntax, for %h and %n).
            (
                "x$(touch${IFS}PWNED):f",
                Err(unsafe_host("x$(touch${IFS}PWNED)")),
            ),
            ("h`id`:f", Err(unsafe_host("h`id`"))),
            ("a;b:f", Err(unsafe_host("a;b"))),
            ("a,b:f", Err(unsafe_host("a,b"))),
            ("-oProxyCommand=x:f", Err(unsafe_host("-oProxyCommand=x"))),
            ("h\tx:f", Err(unsafe_host("h\tx"))),
            ("h\u{1b}x:f", Err(unsafe_host("h\u{1b}x"))),
            ("u@h&x:f", Err(unsafe_host("h&x"))),
            ("h*?[]~#!:f", Ok(remote(None, "h*?[]~#!", None, "f"))),
            ("h\u{e9}:f", Ok(remote(None, "h\u{e9}", None, "f"))),
            // A host is required.
            ("@:x", Err(OperandError::InvalidHost(OsString::from("@:x")))),
        ];
        for (input, expected) in cases {
            assert_eq!(parse(OsStr::new(input)), expected, "operand {input:?}");
        }
    }

    #[test]
    fn non_utf8_paths_survive() {
        let arg = OsString::from_vec(b"host:caf\xe9".to_vec());
        match parse(&arg).unwrap() {
            Operand::Remote(r) => assert_eq!(r.path.as_bytes(), b"caf\xe9"),
            other => panic!("not remote: {other:?}"),
        }
    }

    #[test]
    fn error_messages_are_scp_shaped_and_escaped() {
        assert_eq!(
            OperandError::InvalidUser(b"b\x1bc".to_vec()).to_string(),
            "b\\033c: invalid user name"
        );
        assert_eq!(
            OperandError::InvalidUri(OsString::from("scp://[::1]/x")).to_string(),
            "scp://[::1]/x: invalid uri"
        );
        assert_eq!(
            OperandError::UnsafeHost("a\u{1b}b".into()).to_string(),
            "a\\033b: hostname contains invalid characters"
        );
        assert_eq!(
            OperandError::UnsafeUser(b"a;b".to_vec()).to_string(),
            "a;b: remote username contains invalid characters"
        );
    }

    #[test]
    fn ports_numeric_and_named() {
        assert_eq!(parse_port("22"), Some(22));
        assert_eq!(parse_port("65535"), Some(65535));
        assert_eq!(parse_port("0"), None);
        assert_eq!(parse_port("65536"), None);
        assert_eq!(parse_port("-1"), None);
        assert_eq!(parse_port(""), None);
        let services: &[u8] =
            b"# caf\xe9\nssh\t\t22/tcp\t\t\t# SSH\nfoo 99/udp\nbar 1234/tcp baz \xff\n";
        assert_eq!(service_port("ssh", services), Some(22));
        assert_eq!(service_port("foo", services), None);
        assert_eq!(service_port("baz", services), Some(1234));
        assert_eq!(service_port("nope", services), None);
    }
}
