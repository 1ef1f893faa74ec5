//! `-S program`: an ssh-compatible program run with scp's argument layout,
//! talked to over its stdin and stdout; and `-D program`, an SFTP server
//! run here directly. Their stderr is the user's.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::process::Stdio;

use tokio::process::{Child, Command};

use super::{Channel, Completion, Start, children};
use crate::escape::{for_terminal, io_reason};
use crate::events::Events;
use crate::operand::Remote;

/// Options scp always gives ssh first: no X11, no local command, no
/// forwardings, no remote command from the config, no tty, no multiplexing
/// master (the copy's stdin and stdout are the protocol).
const FIXED_FIRST: &[&str] = &[
    "-x",
    "-oPermitLocalCommand=no",
    "-oClearAllForwardings=yes",
    "-oRemoteCommand=none",
    "-oRequestTTY=no",
    "-oControlMaster=no",
];

/// Given after the user's flags so that they cannot turn it back on.
const FIXED_LAST: &str = "-oForwardAgent=no";

pub struct ProgramTransport {
    pub program: OsString,
    /// Flags from rscp's command line meant for ssh, in order.
    pub ssh_args: Vec<OsString>,
    /// `-P`, for remotes without a port of their own.
    pub port: Option<u16>,
}

pub struct RunningProgram {
    child: Child,
    pid: Option<u32>,
}

impl ProgramTransport {
    /// The full argument list for reaching `remote` to start `start`.
    pub fn arguments(&self, remote: &Remote, start: Start<'_>) -> Vec<OsString> {
        let mut args: Vec<OsString> = FIXED_FIRST.iter().map(OsString::from).collect();
        args.extend(self.ssh_args.iter().cloned());
        args.push(FIXED_LAST.into());
        if let Some(port) = remote.port.or(self.port) {
            args.push("-p".into());
            args.push(port.to_string().into());
        }
        if let Some(user) = &remote.user {
            args.push("-l".into());
            args.push(user.into());
        }
        let command: &OsStr = match start {
            Start::Command(command) => command,
            Start::Subsystem(name) => {
                args.push("-s".into());
                OsStr::new(name)
            }
        };
        args.push("--".into());
        args.push(remote.host.clone().into());
        args.push(command.to_owned());
        args
    }

    pub fn open(
        &self,
        remote: &Remote,
        start: Start<'_>,
        events: &dyn Events,
    ) -> Result<Channel, String> {
        if events.verbose() {
            let line = format!(
                "Executing: program {} host {}, user {}, command {}\n",
                for_terminal(self.program.as_bytes()),
                for_terminal(remote.host.as_bytes()),
                remote.user.as_deref().unwrap_or("(unspecified)"),
                start.shown(),
            );
            events.debug(line.as_bytes());
        }
        spawn(&self.program, self.arguments(remote, start))
    }
}

/// `-D program`: an SFTP server started here, with no ssh and no host.
pub struct DirectTransport {
    pub program: OsString,
}

impl DirectTransport {
    pub fn open(
        &self,
        remote: &Remote,
        start: Start<'_>,
        events: &dyn Events,
    ) -> Result<Channel, String> {
        if let Start::Command(_) = start {
            return Err("-D runs an SFTP server: the legacy protocol cannot use it".into());
        }
        if events.verbose() {
            let line = format!(
                "Executing: program {} (SFTP server, no ssh)\n",
                for_terminal(self.program.as_bytes())
            );
            events.debug(line.as_bytes());
        }
        // scp's layout, though no ssh reads it: `-- host sftp`.
        let args = vec!["--".into(), remote.host.clone().into(), "sftp".into()];
        spawn(&self.program, args)
    }
}

/// Starts `program` with its stdin and stdout ours, its stderr the user's.
fn spawn(program: &OsStr, args: Vec<OsString>) -> Result<Channel, String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{}: {}", for_terminal(program.as_bytes()), io_reason(&e)))?;
    let pid = child.id();
    if let Some(pid) = pid {
        children::register(pid);
    }
    let (Some(writer), Some(reader)) = (child.stdin.take(), child.stdout.take()) else {
        return Err("cannot talk to the ssh program".into());
    };
    Ok(Channel {
        reader: Box::pin(reader),
        writer: Box::pin(writer),
        completion: Completion::Program(RunningProgram { child, pid }),
    })
}

/// How long a terminated program gets before it is killed.
const TERMINATE_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

impl RunningProgram {
    pub async fn terminate(mut self) {
        if let Some(pid) = self.pid.and_then(|p| i32::try_from(p).ok()) {
            let pid = nix::unistd::Pid::from_raw(pid);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        }
        if tokio::time::timeout(TERMINATE_GRACE, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
        if let Some(pid) = self.pid {
            children::forget(pid);
        }
    }

    /// The program's exit code, once it has ended.
    pub async fn exit_code(mut self) -> Option<u32> {
        let status = self.child.wait().await;
        if let Some(pid) = self.pid {
            children::forget(pid);
        }
        status.ok()?.code().and_then(|c| u32::try_from(c).ok())
    }

    pub async fn wait(mut self) -> Result<(), Option<String>> {
        let status = self.child.wait().await;
        if let Some(pid) = self.pid {
            children::forget(pid);
        }
        match status {
            Ok(status) if status.success() => Ok(()),
            // ssh said why (or the remote command did, through it).
            Ok(status) if status.code().is_some() => Err(None),
            Ok(_) => Err(Some("ssh program was killed".into())),
            Err(e) => Err(Some(io_reason(&e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argument_layout_is_scps() {
        let transport = ProgramTransport {
            program: "ssh".into(),
            ssh_args: ["-v", "-i", "k", "-o", "Foo=bar"]
                .iter()
                .map(OsString::from)
                .collect(),
            port: Some(2222),
        };
        let remote = Remote {
            user: Some("u".into()),
            host: "h".into(),
            port: None,
            path: ".".into(),
        };
        let args = transport.arguments(&remote, Start::Command(OsStr::new("scp -v -t /x")));
        let expected = [
            "-x",
            "-oPermitLocalCommand=no",
            "-oClearAllForwardings=yes",
            "-oRemoteCommand=none",
            "-oRequestTTY=no",
            "-oControlMaster=no",
            "-v",
            "-i",
            "k",
            "-o",
            "Foo=bar",
            "-oForwardAgent=no",
            "-p",
            "2222",
            "-l",
            "u",
            "--",
            "h",
            "scp -v -t /x",
        ];
        assert_eq!(
            args,
            expected.iter().map(OsString::from).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_uri_port_beats_dash_p() {
        let transport = ProgramTransport {
            program: "ssh".into(),
            ssh_args: vec![],
            port: Some(1),
        };
        let remote = Remote {
            user: None,
            host: "h".into(),
            port: Some(2),
            path: ".".into(),
        };
        let args = transport.arguments(&remote, Start::Command(OsStr::new("c")));
        let expected = [
            "-x",
            "-oPermitLocalCommand=no",
            "-oClearAllForwardings=yes",
            "-oRemoteCommand=none",
            "-oRequestTTY=no",
            "-oControlMaster=no",
            "-oForwardAgent=no",
            "-p",
            "2",
            "--",
            "h",
            "c",
        ];
        assert_eq!(
            args,
            expected.iter().map(OsString::from).collect::<Vec<_>>()
        );
    }

    /// As scp's SFTP mode: `-s` before `--`, the subsystem name last.
    #[test]
    fn a_subsystem_is_asked_for_with_dash_s() {
        let transport = ProgramTransport {
            program: "ssh".into(),
            ssh_args: vec![],
            port: None,
        };
        let remote = Remote {
            user: None,
            host: "h".into(),
            port: None,
            path: ".".into(),
        };
        let args = transport.arguments(&remote, Start::Subsystem("sftp"));
        let tail: Vec<_> = args[args.len() - 5..].to_vec();
        assert_eq!(
            tail,
            ["-oForwardAgent=no", "-s", "--", "h", "sftp"]
                .iter()
                .map(OsString::from)
                .collect::<Vec<_>>()
        );
    }
}
