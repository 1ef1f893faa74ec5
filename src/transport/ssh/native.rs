//! The built-in transport: one SSH connection per (user, host, port) for
//! the whole run, one exec channel per remote command.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::Mutex;

use super::channel;
use super::connection::{self, Connection, Context};
use super::log::Log;
use crate::config::{self, ConfigFiles, LogLevel, Request};
use crate::escape::for_terminal;
use crate::events::Events;
use crate::operand::Remote;
use crate::transport::{Channel, Completion, Start};

/// How long a closing session may take to say goodbye.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// (user, host, port) of a connection, and which of its kind.
type Key = (String, String, u16, Lane);

/// Which connection to a destination a channel goes over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    /// The one every operand shares.
    Shared,
    /// A second one, for the destination of a copy through this host
    /// (`-3`) whose origin is the same host: its channel is written while
    /// the origin's is not read, and on one connection the origin's data,
    /// left waiting, would stop the session (and the window updates the
    /// write waits for).
    RelayDestination,
}
/// A connection made, or why it could not be.
type Made = Result<Arc<Connection>, String>;

pub struct NativeTransport {
    /// Everything but the destination: command-line options as config
    /// lines, which files to read, who we are.
    template: Request,
    /// `-P`, for remotes without a port of their own.
    port: Option<u16>,
    /// Connections made so far, and failures (not retried: a second
    /// attempt would only ask the same questions again).
    connections: Mutex<HashMap<Key, Made>>,
}

impl NativeTransport {
    /// From scp's flags for ssh (`-4 -6 -A -B -C -c -F -i -J -o -q -v`).
    pub fn new(ssh_args: &[OsString], port: Option<u16>) -> NativeTransport {
        let (command_line, files) = command_line(ssh_args);
        let (local_user, home) = who_am_i();
        NativeTransport {
            template: Request {
                command_line,
                files,
                local_user,
                home,
                system_config: Some(PathBuf::from("/etc/ssh/ssh_config")),
                ..Request::default()
            },
            port,
            connections: Mutex::new(HashMap::new()),
        }
    }

    /// What the config is resolved from for `remote`.
    fn request_for(&self, remote: &Remote) -> Request {
        let mut request = self.template.clone();
        request.host = remote.host.clone();
        request.user = remote.user.clone();
        request.port = remote.port.or(self.port);
        request
    }

    pub async fn open(
        &self,
        remote: &Remote,
        start: Start<'_>,
        events: &dyn Events,
        lane: Lane,
    ) -> Result<Channel, String> {
        let request = self.request_for(remote);
        let settings = config::resolve(&request).map_err(|e| e.to_string())?;
        let log = Log {
            level: settings.log_level,
        };
        for keyword in &settings.ignored {
            log.debug1(&format!("ignoring ssh option {keyword}: no effect in rscp"));
        }
        if events.verbose() {
            let line = format!(
                "Executing: program (built-in ssh) host {}, user {}, command {}\n",
                for_terminal(settings.hostname.as_bytes()),
                for_terminal(settings.user.as_bytes()),
                start.shown(),
            );
            events.debug(line.as_bytes());
        }
        let key = (
            settings.user.clone(),
            settings.hostname.clone(),
            settings.port,
            lane,
        );
        let handle = {
            let mut connections = self.connections.lock().await;
            match connections.get(&key) {
                Some(Ok(connection)) if !connection.handle.is_closed() => connection.clone(),
                Some(Err(message)) => return Err(message.clone()),
                _ => {
                    let context = Context {
                        template: request.clone(),
                    };
                    let made = connection::connect(&settings, &context, log)
                        .await
                        .map(Arc::new);
                    connections.insert(key, made.clone());
                    made?
                }
            }
        };
        let session = handle
            .handle
            .channel_open_session()
            .await
            .map_err(|e| format!("channel to {}: {e}", settings.hostname))?;
        if settings.forward_agent && settings.identity_agent.is_some() {
            log.debug1("Requesting authentication agent forwarding.");
            session
                .agent_forward(false)
                .await
                .map_err(|e| format!("agent forwarding on {}: {e}", settings.hostname))?;
        }
        match start {
            Start::Command(command) => {
                log.debug1(&format!(
                    "Sending command: {}",
                    String::from_utf8_lossy(command.as_bytes())
                ));
                session
                    .exec(true, command.as_bytes().to_vec())
                    .await
                    .map_err(|e| format!("exec on {}: {e}", settings.hostname))?;
            }
            Start::Subsystem(name) => {
                log.debug1(&format!("Sending subsystem: {name}"));
                session
                    .request_subsystem(true, name)
                    .await
                    .map_err(|e| format!("subsystem {name} on {}: {e}", settings.hostname))?;
            }
        }
        let (reader, writer, completion) = channel::split(session, handle.ended.clone());
        Ok(Channel {
            reader: Box::pin(reader),
            writer: Box::pin(writer),
            completion: Completion::Native(completion),
        })
    }

    /// The round trip of the connection to `remote` made so far, if any
    /// (one being made is waited for).
    pub async fn round_trip(&self, remote: &Remote) -> Option<std::time::Duration> {
        let settings = config::resolve(&self.request_for(remote)).ok()?;
        let key = (
            settings.user,
            settings.hostname,
            settings.port,
            Lane::Shared,
        );
        match self.connections.lock().await.get(&key) {
            Some(Ok(connection)) => connection.round_trip,
            _ => None,
        }
    }

    /// Says goodbye to every server, and gives each session a moment to
    /// send that before the process ends.
    pub async fn close(&self) {
        let connections = std::mem::take(&mut *self.connections.lock().await);
        for connection in connections.into_values().flatten() {
            let _ = connection
                .handle
                .disconnect(russh::Disconnect::ByApplication, "", "en")
                .await;
            if let Ok(connection) = Arc::try_unwrap(connection) {
                let _ = tokio::time::timeout(CLOSE_GRACE, connection.handle).await;
            }
        }
    }
}

/// The invoking user's name and home directory. The home is `$HOME` when
/// set (ssh reads the password database; the two differ only when HOME was
/// changed on purpose).
fn who_am_i() -> (String, String) {
    let entry = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten();
    let name = entry.as_ref().map(|u| u.name.clone()).unwrap_or_default();
    let home = std::env::var("HOME")
        .ok()
        .filter(|h| h.starts_with('/'))
        .or_else(|| entry.map(|u| u.dir.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "/".into());
    (name, home)
}

/// `text` as one argument of a config line, whatever it holds (quotes and
/// backslashes escaped as ssh's argv_split reads them).
fn quoted(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// scp's flags for ssh, as config lines in the order ssh applies them:
/// the log level (`-q`, each `-v`) first, then the rest in order, then
/// scp's own `ForwardAgent no` (which `-A` beats by coming first).
fn command_line(ssh_args: &[OsString]) -> (Vec<String>, ConfigFiles) {
    let mut lines = Vec::new();
    let mut files = ConfigFiles::Default;
    let mut level: Option<LogLevel> = None;
    let mut args = ssh_args.iter().map(|a| a.to_string_lossy().into_owned());
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_default();
        match arg.as_str() {
            "-4" => lines.push("AddressFamily inet".into()),
            "-6" => lines.push("AddressFamily inet6".into()),
            "-A" => lines.push("ForwardAgent yes".into()),
            "-C" => lines.push("Compression yes".into()),
            "-q" => level = Some(LogLevel::Quiet),
            "-v" => {
                level = Some(match level {
                    Some(LogLevel::Debug1) => LogLevel::Debug2,
                    Some(LogLevel::Debug2 | LogLevel::Debug3) => LogLevel::Debug3,
                    _ => LogLevel::Debug1,
                })
            }
            "-c" => lines.push(format!("Ciphers {}", value())),
            "-i" => lines.push(format!("IdentityFile {}", quoted(&value()))),
            "-J" => lines.push(format!("ProxyJump {}", value())),
            "-F" => {
                let file = value();
                files = if file.eq_ignore_ascii_case("none") {
                    ConfigFiles::None
                } else {
                    ConfigFiles::File(file.into())
                };
            }
            "-o" => lines.push(value()),
            other => {
                if let Some(option) = other.strip_prefix("-o") {
                    lines.push(option.to_owned());
                }
            }
        }
    }
    if let Some(level) = level {
        let name = match level {
            LogLevel::Quiet => "QUIET",
            LogLevel::Debug1 => "DEBUG1",
            LogLevel::Debug2 => "DEBUG2",
            _ => "DEBUG3",
        };
        lines.insert(0, format!("LogLevel {name}"));
    }
    lines.push("ForwardAgent no".into());
    (lines, files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn flags_become_config_lines() {
        let (lines, files) = command_line(&os(&[
            "-4",
            "-A",
            "-oBatchmode=yes",
            "-o",
            "Port=2222",
            "-c",
            "aes128-ctr",
            "-i",
            "/k ey",
            "-J",
            "j",
            "-F",
            "/cfg",
            "-v",
            "-v",
            "-C",
        ]));
        assert_eq!(
            lines,
            [
                "LogLevel DEBUG2",
                "AddressFamily inet",
                "ForwardAgent yes",
                "Batchmode=yes",
                "Port=2222",
                "Ciphers aes128-ctr",
                "IdentityFile \"/k ey\"",
                "ProxyJump j",
                "Compression yes",
                "ForwardAgent no",
            ]
        );
        assert_eq!(files, ConfigFiles::File("/cfg".into()));
        let (lines, _) = command_line(&os(&["-i", "/a \"b\\c"]));
        assert_eq!(lines[0], "IdentityFile \"/a \\\"b\\\\c\"");
        let (lines, files) = command_line(&os(&["-q", "-F", "none"]));
        assert_eq!(lines, ["LogLevel QUIET", "ForwardAgent no"]);
        assert_eq!(files, ConfigFiles::None);
    }
}
