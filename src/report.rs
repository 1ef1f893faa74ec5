//! What the user sees on stderr — errors, ssh's own messages, remote text,
//! `-v` lines — and the terminal questions around the progress meter. All
//! of it goes through here, so that every line is escaped for the terminal
//! and written with the meter's bars moved out of the way. Writes never
//! panic: a closed stderr is ignored, as scp ignores it.

use std::io::Write;
use std::sync::{Arc, OnceLock};

use crate::escape::for_terminal;
use crate::events::{Events, FileId};
use crate::progress::Meter;

/// The progress meter of this run, once there is one.
static METER: OnceLock<Arc<Meter>> = OnceLock::new();

/// Draws the meter's bars around everything written from now on, and
/// shows the progress the reporter is told of.
pub fn attach_meter(meter: Arc<Meter>) {
    let _ = METER.set(meter);
}

fn meter() -> Option<&'static Meter> {
    METER.get().map(|meter| &**meter)
}

/// One of our own problems, "what: why", as `rscp: what: why`.
pub fn error(message: &str) {
    emit(&format!("rscp: {}", for_terminal(message.as_bytes())));
}

/// ssh's own messages, as ssh words them (no prefix); each line escaped.
pub fn notice(text: &str) {
    emit(&escape_lines(text.as_bytes()));
}

/// Text that came from the network (a peer's message, remote stderr, a
/// server's banner or instructions), escaped line by line.
pub fn remote(text: &[u8]) {
    emit(&escape_lines(text));
}

/// A diagnostic line, `tag: text` (`debug1: ...`), escaped.
pub fn debug(tag: &str, text: &[u8]) {
    emit(&format!("{tag}{}", for_terminal(text)));
}

/// The usage text, as it is.
pub fn usage(text: &str) {
    emit(text);
}

/// Runs `ask` (which talks to the user on the terminal) with the meter
/// taken off the screen until it returns.
pub fn while_asking<R>(ask: impl FnOnce() -> R) -> R {
    let _hold = meter().map(Meter::hold);
    ask()
}

/// Every line of `text` escaped, the line breaks kept (a trailing one
/// dropped).
pub fn escape_lines(text: &[u8]) -> String {
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    text.split(|&b| b == b'\n')
        .map(|line| for_terminal(line.strip_suffix(b"\r").unwrap_or(line)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn emit(text: &str) {
    let write = || {
        let mut stderr = std::io::stderr().lock();
        let _ = stderr.write_all(text.as_bytes());
        let _ = stderr.write_all(b"\n");
    };
    match meter() {
        Some(meter) => meter.suspend(write),
        None => write(),
    }
}

/// The events of a client (the user's own rscp) or of a server (`rscp -t`
/// or `-f` started by a remote scp, whose only audience is its peer).
pub struct Reporter {
    /// A server tells its peer, not its own stderr (scp's `iamremote`).
    pub server: bool,
    pub verbose: bool,
}

impl Events for Reporter {
    fn error(&self, message: &str) {
        if !self.server {
            error(message);
        }
    }

    fn peer_message(&self, message: &[u8]) {
        if !self.server {
            remote(message);
        }
    }

    fn verbose(&self) -> bool {
        self.verbose
    }

    fn debug(&self, text: &[u8]) {
        if self.verbose {
            debug("", text.strip_suffix(b"\n").unwrap_or(text));
        }
    }

    fn file_started(&self, file: FileId, name: &[u8], size: u64) {
        if let Some(meter) = meter() {
            meter.file_started(file, name, size);
        }
    }

    fn file_progress(&self, file: FileId, bytes: u64) {
        if let Some(meter) = meter() {
            meter.file_progress(file, bytes);
        }
    }

    fn file_finished(&self, file: FileId) {
        if let Some(meter) = meter() {
            meter.file_finished(file);
        }
    }

    fn shows_progress(&self) -> bool {
        meter().is_some()
    }

    fn expect(&self, files: u64, bytes: u64) {
        if let Some(meter) = meter() {
            meter.expect(files, bytes);
        }
    }
}

/// Events for one end of a local copy, where both ends are ours: each
/// problem is shown once (by the end that had it), never again as a peer
/// message; progress and debug lines come from the sending end only.
pub struct LocalEnd<'a> {
    pub reporter: &'a dyn Events,
    pub sending: bool,
}

impl Events for LocalEnd<'_> {
    fn error(&self, message: &str) {
        self.reporter.error(message);
    }

    fn peer_message(&self, _message: &[u8]) {}

    fn verbose(&self) -> bool {
        self.sending && self.reporter.verbose()
    }

    fn debug(&self, line: &[u8]) {
        if self.sending {
            self.reporter.debug(line);
        }
    }

    fn file_started(&self, file: FileId, name: &[u8], size: u64) {
        if self.sending {
            self.reporter.file_started(file, name, size);
        }
    }

    fn file_progress(&self, file: FileId, bytes: u64) {
        if self.sending {
            self.reporter.file_progress(file, bytes);
        }
    }

    fn file_finished(&self, file: FileId) {
        if self.sending {
            self.reporter.file_finished(file);
        }
    }

    fn shows_progress(&self) -> bool {
        self.reporter.shows_progress()
    }

    fn expect(&self, files: u64, bytes: u64) {
        self.reporter.expect(files, bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_escaped_one_by_one() {
        assert_eq!(escape_lines(b"a\x1b[2J\nb\r\n"), "a\\033[2J\nb");
        assert_eq!(escape_lines(b"one"), "one");
        assert_eq!(escape_lines(b"\xff\n\n"), "\\377\n");
    }
}
