//! scp's command line.
//!
//! scp uses BSD getopt: clustered flags (`-rpq`), values attached or separate
//! (`-P2222`, `-o Port=22`), no reordering (everything from the first operand
//! on is an operand), `--` ends the options. clap alone does not reproduce
//! that exactly (it reorders, strips `=` from `-o=x`, refuses `-o -v`), so a
//! small getopt pass first rewrites argv into an unambiguous form that the
//! clap definition below then parses. The clap definition stays the single
//! list of flags, and the source of `--help`.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use clap::{Arg, ArgAction, ArgMatches, Command};

use crate::operand::parse_port;

pub const USAGE: &str = "\
usage: rscp [-346ABCOpqRrsTv] [-c cipher] [-D sftp_server_path] [-F ssh_config]
            [-i identity_file] [-J destination] [-l limit] [-o ssh_option]
            [-P port] [-S program] [-X sftp_option] source ... target";

/// What the process has been asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Copy(Invocation),
    Help,
    Version,
    /// `--generate man|bash|zsh|fish`: print a man page or completions.
    Generate(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The user's side: operands are `source... target`.
    Client,
    /// `-t`: receive into the one target operand (server side).
    Sink,
    /// `-f`: send the source operands (server side).
    Source,
}

/// How a copy between two remote hosts is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RemoteToRemote {
    /// `-3` (the default): through this host.
    #[default]
    ThroughLocal,
    /// `-R`: by running scp on the origin host.
    OnOrigin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub role: Role,
    pub recursive: bool,
    pub preserve: bool,
    pub quiet: bool,
    /// How many times `-v` was given.
    pub verbose: u8,
    /// `-T` turns strict filename checking off.
    pub strict_filenames: bool,
    /// `-d`: the target must be a directory (server side).
    pub target_must_be_directory: bool,
    /// `-P`, applied to remote operands that have no port of their own.
    pub port: Option<u16>,
    /// `-l`, in Kbit/s (K = 1024).
    pub limit: Option<u64>,
    /// `-3` or `-R`, whichever came last.
    pub remote_to_remote: RemoteToRemote,
    /// `-S`; `None` means the default transport.
    pub ssh_program: Option<OsString>,
    /// Flags handed to the ssh program, in command-line order, as scp does.
    pub ssh_args: Vec<OsString>,
    /// `-s` (or `-D` without `-O`): SFTP mode; legacy SCP otherwise.
    pub sftp: bool,
    /// `-D`: an SFTP server to run here instead of reaching a host.
    pub sftp_server: Option<OsString>,
    /// `-X buffer=N`: bytes per SFTP read and write.
    pub sftp_buffer: Option<u32>,
    /// `-X nrequests=N`: SFTP requests in flight.
    pub sftp_requests: Option<usize>,
    pub operands: Vec<OsString>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliError {
    /// Bad usage: print the message (if any), then the usage text; exit 1.
    Usage(Option<String>),
    /// A fatal setup error such as a bad port: exit 255.
    Fatal(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Fatal(_) => 255,
            CliError::Usage(_) => 1,
        }
    }
}

/// The flag definitions. Every short flag here is a getopt letter.
pub fn command() -> Command {
    let flag = |letter: char, id: &'static str, help: &'static str| {
        Arg::new(id)
            .short(letter)
            .help(help)
            .action(ArgAction::SetTrue)
    };
    let value = |letter: char, id: &'static str, name: &'static str, help: &'static str| {
        Arg::new(id)
            .short(letter)
            .value_name(name)
            .help(help)
            .allow_hyphen_values(true)
            .value_parser(clap::builder::OsStringValueParser::new())
            .action(ArgAction::Append)
    };
    Command::new("rscp")
        .about("Secure copy (remote file copy program), a drop-in replacement for OpenSSH scp")
        .long_about(
            "rscp copies files between hosts on a network, as scp(1) does: same flags, same \
             operands, same messages and exit statuses, the legacy SCP protocol on the wire. \
             It reaches remote hosts with its own SSH client, reading ~/.ssh as ssh(1) does \
             (keys, agent, known_hosts, config), or with -S through an ssh program. On a \
             terminal it shows scp's progress meter, with a total line for runs of several \
             files. The same program is the remote end (rscp -t, rscp -f).",
        )
        .version(env!("CARGO_PKG_VERSION"))
        .override_usage(
            "rscp [-346ABCOpqRrsTv] [-c cipher] [-D sftp_server_path] [-F ssh_config]\n            \
             [-i identity_file] [-J destination] [-l limit] [-o ssh_option]\n            \
             [-P port] [-S program] [-X sftp_option] source ... target",
        )
        .disable_help_flag(true)
        .disable_version_flag(true)
        .dont_collapse_args_in_usage(true)
        .arg(flag(
            '1',
            "protocol1",
            "Refused: SSH protocol 1 is no longer supported",
        ))
        .arg(flag('2', "protocol2", "Ignored, for compatibility"))
        .arg(flag(
            '3',
            "through-local",
            "Copy between two remote hosts through the local host",
        ))
        .arg(flag('4', "ipv4", "Use IPv4 addresses only"))
        .arg(flag('6', "ipv6", "Use IPv6 addresses only"))
        .arg(flag(
            'A',
            "forward-agent",
            "Allow forwarding of the authentication agent",
        ))
        .arg(flag(
            'B',
            "batch",
            "Batch mode: never ask for passwords or passphrases",
        ))
        .arg(flag('C', "compress", "Enable compression"))
        .arg(flag(
            'O',
            "legacy",
            "Use the legacy SCP protocol (the default in rscp)",
        ))
        .arg(flag(
            'p',
            "preserve",
            "Preserve modification times, access times and modes",
        ))
        .arg(flag(
            'q',
            "quiet",
            "Quiet mode: no progress meter, no ssh warnings",
        ))
        .arg(flag(
            'R',
            "remote-to-remote",
            "Copy between remote hosts by running scp on the origin host",
        ))
        .arg(flag('r', "recursive", "Copy directories recursively"))
        .arg(flag('s', "sftp", "Use the SFTP protocol"))
        .arg(flag(
            'T',
            "no-strict",
            "Disable strict filename checking of downloads",
        ))
        .arg(
            Arg::new("verbose")
                .short('v')
                .help("Verbose mode; repeat for more")
                .action(ArgAction::Count),
        )
        .arg(
            flag(
                'd',
                "target-directory",
                "Server: the target must be a directory",
            )
            .hide(true),
        )
        .arg(flag('f', "from", "Server: act as the source").hide(true))
        .arg(flag('t', "to", "Server: act as the sink").hide(true))
        .arg(value(
            'c',
            "cipher",
            "cipher",
            "Cipher for the connection (passed to ssh)",
        ))
        .arg(value(
            'D',
            "sftp-server",
            "sftp_server_path",
            "Connect directly to a local SFTP server",
        ))
        .arg(
            value(
                'F',
                "ssh-config",
                "ssh_config",
                "Alternative ssh configuration file",
            )
            .value_hint(clap::ValueHint::FilePath),
        )
        .arg(
            value(
                'i',
                "identity",
                "identity_file",
                "Identity (private key) file",
            )
            .value_hint(clap::ValueHint::FilePath),
        )
        .arg(value(
            'J',
            "jump",
            "destination",
            "Connect through a jump host",
        ))
        .arg(value(
            'l',
            "limit",
            "limit",
            "Limit the bandwidth, in Kbit/s",
        ))
        .arg(value(
            'o',
            "option",
            "ssh_option",
            "An ssh option, in ssh_config format",
        ))
        .arg(value(
            'P',
            "port",
            "port",
            "Port to connect to on the remote host",
        ))
        .arg(
            value(
                'S',
                "program",
                "program",
                "Program to use for the connection (an ssh)",
            )
            .value_hint(clap::ValueHint::CommandName),
        )
        .arg(value(
            'X',
            "sftp-option",
            "sftp_option",
            "SFTP option (buffer=, nrequests=)",
        ))
        .arg(
            Arg::new("help")
                .long("help")
                .help("Print help")
                .action(ArgAction::SetTrue),
        )
        .arg(
            Arg::new("version")
                .long("version")
                .help("Print version")
                .action(ArgAction::SetTrue),
        )
        .arg(
            Arg::new("generate")
                .long("generate")
                .value_name("what")
                .help("Print the man page or shell completions (man, bash, zsh, fish)")
                .value_parser(clap::builder::PossibleValuesParser::new(
                    crate::manual::KINDS,
                ))
                .hide(true),
        )
        .arg(
            Arg::new("operands")
                .value_name("source ... target")
                .value_hint(clap::ValueHint::AnyPath)
                .value_parser(clap::builder::OsStringValueParser::new())
                .num_args(0..)
                .trailing_var_arg(true)
                .allow_hyphen_values(true),
        )
}

/// Parses argv (including argv[0]).
pub fn parse(args: Vec<OsString>) -> Result<Request, CliError> {
    let definition = command();
    let parsed = getopt(&definition, args.into_iter().skip(1).collect())?;
    let matches = definition
        .try_get_matches_from(parsed.clap_argv())
        .map_err(|e| CliError::Usage(Some(e.kind().to_string())))?;
    if matches.get_flag("help") {
        return Ok(Request::Help);
    }
    if matches.get_flag("version") {
        return Ok(Request::Version);
    }
    if let Some(kind) = matches.get_one::<String>("generate") {
        return Ok(Request::Generate(kind.clone()));
    }
    invocation(&matches, &parsed.options).map(Request::Copy)
}

/// The command line as BSD getopt reads it.
struct Getopt {
    /// Each option in order, with its value if it takes one.
    options: Vec<(char, Option<OsString>)>,
    long: Vec<OsString>,
    operands: Vec<OsString>,
}

impl Getopt {
    /// An argv in which every option stands alone and every value is a
    /// separate argument, which clap reads without ambiguity.
    fn clap_argv(&self) -> Vec<OsString> {
        let mut argv = vec![OsString::from("rscp")];
        argv.extend(self.long.iter().cloned());
        for (letter, value) in &self.options {
            argv.push(OsString::from(format!("-{letter}")));
            argv.extend(value.iter().cloned());
        }
        argv.push(OsString::from("--"));
        argv.extend(self.operands.iter().cloned());
        argv
    }
}

/// Reads argv the way BSD getopt does: options until the first operand or
/// `--`, letters clustered, values attached or in the next argument.
fn getopt(definition: &Command, args: Vec<OsString>) -> Result<Getopt, CliError> {
    let takes_value = |letter: char| {
        definition
            .get_arguments()
            .find(|a| a.get_short() == Some(letter))
            .map(|a| a.get_action().takes_values())
    };
    let mut parsed = Getopt {
        options: Vec::new(),
        long: Vec::new(),
        operands: Vec::new(),
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let bytes = arg.as_bytes();
        if bytes == b"--" {
            break;
        }
        if bytes == b"--help" || bytes == b"--version" || bytes.starts_with(b"--generate=") {
            parsed.long.push(arg);
            continue;
        }
        if bytes == b"--generate" {
            parsed.long.push(arg);
            parsed.long.extend(args.next());
            continue;
        }
        if bytes.len() < 2 || bytes[0] != b'-' {
            parsed.operands.push(arg);
            break;
        }
        let mut i = 1;
        while i < bytes.len() {
            let letter = char::from(bytes[i]);
            let known = bytes[i]
                .is_ascii_alphanumeric()
                .then(|| takes_value(letter))
                .flatten();
            match known {
                None => {
                    return Err(CliError::Usage(Some(format!(
                        "unknown option -- {}",
                        crate::escape::for_terminal(&bytes[i..i + 1])
                    ))));
                }
                Some(false) => {
                    parsed.options.push((letter, None));
                    i += 1;
                }
                Some(true) => {
                    let value = if i + 1 < bytes.len() {
                        OsStr::from_bytes(&bytes[i + 1..]).to_owned()
                    } else {
                        args.next().ok_or_else(|| {
                            CliError::Usage(Some(format!(
                                "option requires an argument -- {letter}"
                            )))
                        })?
                    };
                    parsed.options.push((letter, Some(value)));
                    break;
                }
            }
        }
    }
    parsed.operands.extend(args);
    Ok(parsed)
}

fn invocation(
    m: &ArgMatches,
    options: &[(char, Option<OsString>)],
) -> Result<Invocation, CliError> {
    if m.get_flag("protocol1") {
        return Err(CliError::Fatal(
            "SSH protocol v.1 is no longer supported".into(),
        ));
    }
    let last = |id: &str| {
        m.get_many::<OsString>(id)
            .and_then(|mut v| v.next_back().cloned())
    };

    let port =
        match last("port") {
            None => None,
            Some(text) => Some(text.to_str().and_then(parse_port).ok_or_else(|| {
                CliError::Fatal(format!("bad port \"{}\"", text.to_string_lossy()))
            })?),
        };
    let limit = match last("limit") {
        None => None,
        Some(text) => Some(
            text.to_str()
                .and_then(|s| s.parse::<u64>().ok())
                .filter(|kbps| (1..=100 * 1024 * 1024).contains(kbps))
                .ok_or(CliError::Usage(None))?,
        ),
    };
    let (mut sftp_buffer, mut sftp_requests) = (None, None);
    for (letter, value) in options {
        if let ('X', Some(value)) = (letter, value) {
            match sftp_option(value.as_bytes())? {
                SftpOption::Buffer(n) => sftp_buffer = Some(n),
                SftpOption::Requests(n) => sftp_requests = Some(n),
            }
        }
    }
    let sftp_server = last("sftp-server");
    // rscp's default is legacy; -D asks for SFTP unless -O says otherwise.
    let chosen = options.iter().rev().find_map(|(letter, _)| match letter {
        'O' => Some(false),
        's' => Some(true),
        _ => None,
    });
    let sftp = chosen.unwrap_or(sftp_server.is_some());

    let role = if m.get_flag("from") {
        Role::Source
    } else if m.get_flag("to") {
        Role::Sink
    } else {
        Role::Client
    };

    let operands: Vec<OsString> = m
        .get_many::<OsString>("operands")
        .map(|v| v.cloned().collect())
        .unwrap_or_default();
    if role == Role::Client && operands.len() < 2 {
        return Err(CliError::Usage(None));
    }

    Ok(Invocation {
        role,
        recursive: m.get_flag("recursive"),
        preserve: m.get_flag("preserve"),
        quiet: m.get_flag("quiet"),
        verbose: m.get_count("verbose"),
        strict_filenames: !m.get_flag("no-strict"),
        target_must_be_directory: m.get_flag("target-directory"),
        port,
        limit,
        remote_to_remote: options
            .iter()
            .rev()
            .find_map(|(letter, _)| match letter {
                '3' => Some(RemoteToRemote::ThroughLocal),
                'R' => Some(RemoteToRemote::OnOrigin),
                _ => None,
            })
            .unwrap_or_default(),
        ssh_program: last("program"),
        ssh_args: ssh_args(options),
        sftp,
        sftp_server,
        sftp_buffer,
        sftp_requests,
        operands,
    })
}

enum SftpOption {
    Buffer(u32),
    Requests(usize),
}

/// `-X buffer=N` (1 B to 256 KiB, with a K/M/G suffix as scp's
/// scan_scaled reads it) or `-X nrequests=N` (1 to 262144), in scp's words
/// when wrong.
fn sftp_option(value: &[u8]) -> Result<SftpOption, CliError> {
    let shown = |text: &[u8]| crate::escape::for_terminal(text);
    if let Some(text) = value.strip_prefix(b"buffer=") {
        let invalid = || {
            CliError::Fatal(format!(
                "Invalid buffer size \"{}\": Invalid argument",
                shown(text)
            ))
        };
        let digits = text.iter().take_while(|b| b.is_ascii_digit()).count();
        let scale: u64 = match &text[digits..] {
            b"" => 1,
            b"k" | b"K" => 1 << 10,
            b"m" | b"M" => 1 << 20,
            b"g" | b"G" => 1 << 30,
            _ => return Err(invalid()),
        };
        let number: u64 = std::str::from_utf8(&text[..digits])
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or_else(invalid)?;
        let bytes = number.checked_mul(scale).ok_or_else(invalid)?;
        if !(1..=256 * 1024).contains(&bytes) {
            return Err(invalid());
        }
        return Ok(SftpOption::Buffer(bytes as u32));
    }
    if let Some(text) = value.strip_prefix(b"nrequests=") {
        let why = match std::str::from_utf8(text)
            .ok()
            .and_then(|t| t.parse::<i64>().ok())
        {
            None => "invalid",
            Some(n) if n < 1 => "too small",
            Some(n) if n > 256 * 1024 => "too large",
            Some(n) => return Ok(SftpOption::Requests(n as usize)),
        };
        return Err(CliError::Fatal(format!(
            "Invalid number of requests \"{}\": {why}",
            shown(text)
        )));
    }
    Err(CliError::Fatal("Invalid -X option".into()))
}

/// The flags scp hands to ssh, in the order they were given.
fn ssh_args(options: &[(char, Option<OsString>)]) -> Vec<OsString> {
    let mut args = Vec::new();
    for (letter, value) in options {
        match (letter, value) {
            ('4' | '6' | 'A' | 'C' | 'q' | 'v', None) => {
                args.push(OsString::from(format!("-{letter}")))
            }
            ('B', None) => args.push(OsString::from("-oBatchmode=yes")),
            ('o' | 'c' | 'i' | 'F' | 'J', Some(value)) => {
                args.push(OsString::from(format!("-{letter}")));
                args.push(value.clone());
            }
            _ => {}
        }
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Request, CliError> {
        let mut argv = vec![OsString::from("rscp")];
        argv.extend(args.iter().map(OsString::from));
        parse(argv)
    }

    fn copy(args: &[&str]) -> Invocation {
        match run(args) {
            Ok(Request::Copy(inv)) => inv,
            other => panic!("{args:?} gave {other:?}"),
        }
    }

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn clustered_flags_and_attached_values() {
        let inv = copy(&["-rpq", "-P2222", "-oPort=22", "-o", "User=x", "a", "h:b"]);
        assert!(inv.recursive && inv.preserve && inv.quiet);
        assert_eq!(inv.port, Some(2222));
        assert_eq!(inv.ssh_args, os(&["-q", "-o", "Port=22", "-o", "User=x"]));
        assert_eq!(inv.operands, os(&["a", "h:b"]));
    }

    #[test]
    fn value_may_follow_in_a_cluster_and_start_with_a_dash() {
        let inv = copy(&["-rP", "2222", "-o", "-v", "a", "b"]);
        assert!(inv.recursive);
        assert_eq!(inv.port, Some(2222));
        assert_eq!(inv.ssh_args, os(&["-o", "-v"]));
        assert_eq!(inv.verbose, 0);
    }

    #[test]
    fn equals_sign_is_part_of_an_attached_value() {
        let inv = copy(&["-o=Port=22", "a", "b"]);
        assert_eq!(inv.ssh_args, os(&["-o", "=Port=22"]));
    }

    #[test]
    fn options_after_the_first_operand_are_operands() {
        let inv = copy(&["a", "h:b", "-r"]);
        assert!(!inv.recursive);
        assert_eq!(inv.operands, os(&["a", "h:b", "-r"]));
    }

    #[test]
    fn double_dash_ends_options() {
        let inv = copy(&["-r", "--", "-a", "b"]);
        assert!(inv.recursive);
        assert_eq!(inv.operands, os(&["-a", "b"]));
        let inv = copy(&["-", "b"]);
        assert_eq!(inv.operands, os(&["-", "b"]));
    }

    #[test]
    fn ssh_flags_keep_their_order() {
        let inv = copy(&[
            "-v",
            "-i",
            "k",
            "-o",
            "Foo=bar",
            "-q",
            "-C",
            "-4",
            "-B",
            "-6",
            "-A",
            "-c",
            "aes128-ctr",
            "-F",
            "cfg",
            "-J",
            "jump",
            "-v",
            "a",
            "b",
        ]);
        assert_eq!(
            inv.ssh_args,
            os(&[
                "-v",
                "-i",
                "k",
                "-o",
                "Foo=bar",
                "-q",
                "-C",
                "-4",
                "-oBatchmode=yes",
                "-6",
                "-A",
                "-c",
                "aes128-ctr",
                "-F",
                "cfg",
                "-J",
                "jump",
                "-v"
            ])
        );
        assert_eq!(inv.verbose, 2);
    }

    #[test]
    fn repeated_port_takes_the_last() {
        assert_eq!(copy(&["-P", "1", "-P", "2", "a", "b"]).port, Some(2));
        assert_eq!(copy(&["-P", "ssh", "a", "b"]).port, Some(22));
    }

    #[test]
    fn bad_ports_are_fatal() {
        for bad in ["0", "foo", "65536", "-5", ""] {
            assert_eq!(
                run(&["-P", bad, "a", "b"]),
                Err(CliError::Fatal(format!("bad port \"{bad}\""))),
                "port {bad:?}"
            );
        }
    }

    #[test]
    fn usage_errors() {
        assert_eq!(run(&["a"]), Err(CliError::Usage(None)));
        assert_eq!(run(&[]), Err(CliError::Usage(None)));
        assert_eq!(
            run(&["-Z", "a", "b"]),
            Err(CliError::Usage(Some("unknown option -- Z".into())))
        );
        assert_eq!(
            run(&["-h", "a", "b"]),
            Err(CliError::Usage(Some("unknown option -- h".into())))
        );
        assert_eq!(
            run(&["a", "b", "-P"]).map(|_| ()),
            Ok(()),
            "a trailing -P is an operand"
        );
        assert_eq!(
            run(&["-P"]),
            Err(CliError::Usage(Some(
                "option requires an argument -- P".into()
            )))
        );
        assert_eq!(
            run(&["--long", "a", "b"]),
            Err(CliError::Usage(Some("unknown option -- -".into())))
        );
        assert_eq!(run(&["-l", "0", "a", "b"]), Err(CliError::Usage(None)));
        assert_eq!(
            run(&["-X", "bogus=1", "a", "b"]),
            Err(CliError::Fatal("Invalid -X option".into()))
        );
    }

    #[test]
    fn protocol_one_is_fatal_and_two_ignored() {
        assert_eq!(
            run(&["-1", "a", "b"]),
            Err(CliError::Fatal(
                "SSH protocol v.1 is no longer supported".into()
            ))
        );
        assert_eq!(copy(&["-2", "-O", "a", "b"]).operands, os(&["a", "b"]));
    }

    #[test]
    fn sftp_mode_flags() {
        assert!(!copy(&["a", "b"]).sftp);
        assert!(copy(&["-s", "a", "b"]).sftp);
        assert!(!copy(&["-s", "-O", "a", "b"]).sftp);
        assert!(copy(&["-O", "-s", "a", "b"]).sftp);
        let direct = copy(&["-D", "/x", "a", "b"]);
        assert!(direct.sftp);
        assert_eq!(direct.sftp_server, Some("/x".into()));
        assert!(!copy(&["-D", "/x", "-O", "a", "b"]).sftp);
        let tuned = copy(&["-X", "buffer=1k", "-X", "nrequests=7", "a", "b"]);
        assert_eq!(
            (tuned.sftp_buffer, tuned.sftp_requests),
            (Some(1024), Some(7))
        );
        assert_eq!(
            copy(&["-X", "buffer=256K", "a", "b"]).sftp_buffer,
            Some(262_144)
        );
        for (x, message) in [
            ("buffer=0", "Invalid buffer size \"0\": Invalid argument"),
            (
                "buffer=300000",
                "Invalid buffer size \"300000\": Invalid argument",
            ),
            (
                "buffer=abc",
                "Invalid buffer size \"abc\": Invalid argument",
            ),
            ("nrequests=0", "Invalid number of requests \"0\": too small"),
            (
                "nrequests=262145",
                "Invalid number of requests \"262145\": too large",
            ),
            ("nrequests=x", "Invalid number of requests \"x\": invalid"),
            ("foo=1", "Invalid -X option"),
        ] {
            assert_eq!(
                run(&["-X", x, "a", "b"]),
                Err(CliError::Fatal(message.into())),
                "{x}"
            );
        }
    }

    #[test]
    fn server_roles() {
        let inv = copy(&["-r", "-p", "-d", "-t", "--", "/tmp/x"]);
        assert_eq!(inv.role, Role::Sink);
        assert!(inv.recursive && inv.preserve && inv.target_must_be_directory);
        assert_eq!(inv.operands, os(&["/tmp/x"]));
        let inv = copy(&["-v", "-f", "a", "b", "c"]);
        assert_eq!(inv.role, Role::Source);
        assert_eq!(inv.verbose, 1);
        // A server with no operand is not a usage error of the client kind.
        assert_eq!(copy(&["-t"]).operands, Vec::<OsString>::new());
    }

    #[test]
    fn remote_to_remote_modes() {
        assert_eq!(
            copy(&["a", "b"]).remote_to_remote,
            RemoteToRemote::ThroughLocal
        );
        assert_eq!(
            copy(&["-R", "a", "b"]).remote_to_remote,
            RemoteToRemote::OnOrigin
        );
        assert_eq!(
            copy(&["-R", "-3", "a", "b"]).remote_to_remote,
            RemoteToRemote::ThroughLocal
        );
        assert_eq!(
            copy(&["-3R", "a", "b"]).remote_to_remote,
            RemoteToRemote::OnOrigin
        );
    }

    #[test]
    fn bandwidth_limit() {
        assert_eq!(copy(&["-l", "800", "a", "b"]).limit, Some(800));
        assert_eq!(copy(&["-l8000", "a", "b"]).limit, Some(8000));
        assert_eq!(copy(&["a", "b"]).limit, None);
        assert_eq!(run(&["-l", "0", "a", "b"]), Err(CliError::Usage(None)));
        assert_eq!(run(&["-l", "fast", "a", "b"]), Err(CliError::Usage(None)));
    }

    #[test]
    fn strict_filenames_default_on() {
        assert!(copy(&["a", "b"]).strict_filenames);
        assert!(!copy(&["-T", "a", "b"]).strict_filenames);
    }

    #[test]
    fn help_and_version() {
        assert_eq!(run(&["--help"]), Ok(Request::Help));
        assert_eq!(run(&["--version"]), Ok(Request::Version));
    }

    #[test]
    fn definition_is_consistent() {
        command().debug_assert();
    }
}
