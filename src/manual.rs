//! The man page and shell completions, generated from the clap definition
//! in `cli` (so that they cannot drift from the flags rscp accepts).

use std::io::Write;

use clap_complete::Shell;
use clap_mangen::Man;

use crate::cli;

/// What `rscp --generate` can write.
pub const KINDS: &[&str] = &["man", "bash", "zsh", "fish"];

/// The text for `kind` (one of [`KINDS`]).
pub fn generate(kind: &str) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    match kind {
        "man" => man_page(&mut out)?,
        "bash" => completions(Shell::Bash, &mut out),
        "zsh" => completions(Shell::Zsh, &mut out),
        "fish" => completions(Shell::Fish, &mut out),
        other => {
            return Err(std::io::Error::other(format!(
                "nothing to generate for {other}"
            )));
        }
    }
    Ok(out)
}

fn completions(shell: Shell, out: &mut Vec<u8>) {
    let mut command = cli::command();
    clap_complete::generate(shell, &mut command, "rscp", out);
}

fn man_page(out: &mut Vec<u8>) -> std::io::Result<()> {
    let man = Man::new(cli::command())
        .title("RSCP")
        .section("1")
        .manual("User Commands")
        .source(format!("rscp {}", env!("CARGO_PKG_VERSION")));
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    out.write_all(EXTRA_SECTIONS.as_bytes())?;
    Ok(())
}

/// Sections clap cannot derive: scp(1)'s, and rscp's differences.
const EXTRA_SECTIONS: &str = r#".SH OPERANDS
A local file name, or a remote one in one of the forms
.IP
[user@]host:[path]
.br
[user@][IPv6address]:[path]
.br
scp://[user@]host[:port][/path]
.PP
An operand is remote when it has a colon before any slash; a leading
colon, or a slash first (./a:b), makes it local. The user name ends at the
last @. An empty path is the login directory. In scp:// URIs the user and
path are percent-decoded, the slash after the authority is a separator
(scp://host//abs is /abs), and IPv6 hosts are refused.
.PP
Remote paths are given to the remote shell unquoted: globs, ~ and $VAR
work there, and names with spaces must be quoted for that shell.
.SH EXIT STATUS
0 when everything was copied; 1 when anything failed (the other files are
still copied); 255 for setup errors such as a bad port.
.SH ENVIRONMENT
.TP
HOME
Where ~/.ssh is (ssh uses the password database).
.TP
SSH_AUTH_SOCK
The agent socket, unless IdentityAgent says otherwise.
.TP
SSH_ASKPASS, SSH_ASKPASS_REQUIRE, DISPLAY
How passphrases, passwords and confirmations are asked when there is no
terminal, as in ssh(1).
.SH FILES
.TP
~/.ssh/config, /etc/ssh/ssh_config
Settings, read as ssh(1) reads them (see ssh_config(5)).
.TP
~/.ssh/known_hosts, /etc/ssh/ssh_known_hosts
Known host keys.
.TP
~/.ssh/id_*
Default identities.
.SH SERVER USE
The same program is the remote end (rscp -t, rscp -f). Installed as the
server's scp (a link named scp ahead of OpenSSH's in sshd's PATH), it
serves OpenSSH's scp and rscp alike.
.SH DIFFERENCES FROM SCP
.IP \(bu 2
Messages start with "rscp:"; messages from the peer are shown with control
characters escaped.
.IP \(bu 2
rscp has its own SSH client (-S still runs an ssh program), uses one
connection per user, host and port for the whole run, and notices a dead
peer even without ServerAliveInterval (15 seconds by default).
.IP \(bu 2
Strict filename checking also checks the top-level name with -r, needs a
leading dot to be matched explicitly, understands quotes, blanks, shell
syntax and {x..y} in the request, and widens the match only for a last
component that holds $VAR or `cmd`; a request for ., .., ~ or host:
accepts a directory and no file.
.IP \(bu 2
Host and user names with shell syntax on the command line are refused,
as ssh has refused them since 9.6.
.IP \(bu 2
Names with a newline are sent encoded as scp encodes them, directories
too; downloads into a pipe, FIFO or terminal keep its mode and times
with -p.
.IP \(bu 2
The receiving side is stricter: an end of stream inside a directory, a
second reply to one request, over-long or malformed records are errors.
.IP \(bu 2
Local copies are made by rscp itself, not by cp(1); copying a directory
into itself is refused; . and .. are sent under their real names.
.IP \(bu 2
On a terminal, runs of several files show a total line under the
per-file line; it is cleared at the end.
.IP \(bu 2
Copies between two remote hosts (-3) are checked at this host.
.IP \(bu 2
The legacy protocol is the default; -s selects SFTP, and so does -D
unless -O is given. In SFTP mode a remote path is read as the remote shell
would read it (quotes, braces, globs, ~); a word that needs the remote
shell ($VAR, backticks, ;) is refused; several sources into a missing
directory fail as in legacy mode; remote symlinks under -r are followed
and -l is honoured.
.IP \(bu 2
A host that cannot run scp at all (no scp on its PATH, or an account that
allows only SFTP) is reached over SFTP, in the default mode too; with -3
each end speaks what its host can, so an scp-only host and an SFTP-only
host can be copied between.
.SH SEE ALSO
scp(1), ssh(1), ssh_config(5), sshd(8)
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_man_page_has_scps_sections_and_the_differences() {
        let page = String::from_utf8(generate("man").unwrap()).unwrap();
        for section in [
            ".SH NAME",
            ".SH SYNOPSIS",
            ".SH DESCRIPTION",
            ".SH OPTIONS",
            ".SH EXIT STATUS",
            ".SH DIFFERENCES FROM SCP",
            ".SH SEE ALSO",
        ] {
            assert!(page.contains(section), "missing {section}");
        }
        assert!(page.contains("\\-P"), "options are listed");
    }

    #[test]
    fn completions_know_the_flags() {
        for shell in ["bash", "zsh", "fish"] {
            let text = String::from_utf8(generate(shell).unwrap()).unwrap();
            assert!(text.contains("rscp"), "{shell}");
            let knows_i = text.contains("-i") || text.contains("-s i");
            assert!(knows_i, "{shell} does not complete -i");
        }
        assert!(generate("tcsh").is_err());
    }
}
