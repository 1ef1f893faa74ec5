//! Questions for the user — passphrases, passwords, host key confirmation —
//! asked on the terminal or through `SSH_ASKPASS`, chosen as ssh chooses:
//! `SSH_ASKPASS_REQUIRE=force` always uses the askpass program, `prefer`
//! uses it when a display is set, `never` never does; otherwise the
//! terminal is used, and the askpass program only when there is no
//! terminal and a display (`DISPLAY`, `WAYLAND_DISPLAY`) is set. With
//! neither, there is no answer: the caller fails at once instead of
//! waiting for input that cannot come.

use std::io::{BufRead, Write};
use std::process::{Command, Stdio};

/// What kind of answer is wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A secret: not echoed.
    Secret,
    /// Text that may be echoed (keyboard-interactive prompts that say so).
    Echoed,
    /// A yes/no confirmation (askpass is told with SSH_ASKPASS_PROMPT).
    Confirm,
}

const DEFAULT_ASKPASS: &str = "/usr/bin/ssh-askpass";

/// Asks `prompt` (escaped already, if it came from the network); `None`
/// when no answer can be had (no terminal and no askpass, or the user
/// cancelled the askpass dialog). The progress meter is off the screen
/// meanwhile.
pub fn ask(prompt: &str, kind: Kind) -> Option<String> {
    crate::report::while_asking(|| ask_now(prompt, kind))
}

fn ask_now(prompt: &str, kind: Kind) -> Option<String> {
    let display = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
    let mut allow_askpass = display;
    let mut use_askpass = false;
    match std::env::var("SSH_ASKPASS_REQUIRE")
        .map(|v| v.to_ascii_lowercase())
        .as_deref()
    {
        Ok("force") => {
            use_askpass = true;
            allow_askpass = true;
        }
        Ok("prefer") => use_askpass = allow_askpass,
        Ok("never") => allow_askpass = false,
        _ => {}
    }
    if !use_askpass {
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
        {
            Ok(tty) => return ask_terminal(prompt, kind, tty),
            Err(_) => use_askpass = true,
        }
    }
    if use_askpass && allow_askpass {
        return ask_program(prompt, kind);
    }
    None
}

fn ask_terminal(prompt: &str, kind: Kind, tty: std::fs::File) -> Option<String> {
    match kind {
        Kind::Secret => rpassword::prompt_password(prompt).ok(),
        Kind::Echoed | Kind::Confirm => {
            let mut writer = tty.try_clone().ok()?;
            writer.write_all(prompt.as_bytes()).ok()?;
            writer.flush().ok()?;
            let mut line = String::new();
            std::io::BufReader::new(tty).read_line(&mut line).ok()?;
            if line.is_empty() {
                return None;
            }
            Some(line.trim_end_matches(['\r', '\n']).to_owned())
        }
    }
}

fn ask_program(prompt: &str, kind: Kind) -> Option<String> {
    let program = std::env::var_os("SSH_ASKPASS").unwrap_or_else(|| DEFAULT_ASKPASS.into());
    let mut command = Command::new(program);
    command
        .arg(prompt)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    if kind == Kind::Confirm {
        command.env("SSH_ASKPASS_PROMPT", "confirm");
    }
    let output = command.output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    Some(text.trim_end_matches(['\r', '\n']).to_owned())
}
