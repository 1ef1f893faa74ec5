//! What the user sees: errors and `-v` lines on stderr, the progress meter
//! on stdout. Writes never panic: a closed stderr is ignored, as scp
//! ignores it.

use std::io::Write;
use std::sync::Arc;

use crate::escape::for_terminal;
use crate::progress::Meter;
use crate::protocol::Events;

/// Writes one line to stderr, escaped, with the `rscp: ` prefix.
pub fn error(message: &str) {
    line(&format!("rscp: {}", for_terminal(message.as_bytes())));
}

fn line(text: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(text.as_bytes());
    let _ = stderr.write_all(b"\n");
}

/// The events of a client (the user's own rscp) or of a server (`rscp -t`
/// or `-f` started by a remote scp, whose only audience is its peer).
pub struct Reporter {
    /// A server tells its peer, not its own stderr (scp's `iamremote`).
    pub server: bool,
    pub verbose: bool,
    /// The progress meter, when there is one.
    pub meter: Option<Arc<Meter>>,
}

impl Reporter {
    /// Writes to stderr with the progress bars moved out of the way.
    fn say(&self, write: impl FnOnce()) {
        match &self.meter {
            Some(meter) => meter.suspend(write),
            None => write(),
        }
    }
}

impl Events for Reporter {
    fn error(&self, message: &str) {
        if !self.server {
            self.say(|| error(message));
        }
    }

    fn peer_message(&self, message: &[u8]) {
        if !self.server {
            self.say(|| line(&for_terminal(message)));
        }
    }

    fn verbose(&self) -> bool {
        self.verbose
    }

    fn debug(&self, text: &[u8]) {
        if self.verbose {
            self.say(|| line(&for_terminal(text.strip_suffix(b"\n").unwrap_or(text))));
        }
    }

    fn file_started(&self, name: &[u8], size: u64) {
        if let Some(meter) = &self.meter {
            meter.file_started(name, size);
        }
    }

    fn file_progress(&self, bytes: u64) {
        if let Some(meter) = &self.meter {
            meter.file_progress(bytes);
        }
    }

    fn file_finished(&self) {
        if let Some(meter) = &self.meter {
            meter.file_finished();
        }
    }

    fn shows_progress(&self) -> bool {
        self.meter.is_some()
    }

    fn expect(&self, files: u64, bytes: u64) {
        if let Some(meter) = &self.meter {
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

    fn file_started(&self, name: &[u8], size: u64) {
        if self.sending {
            self.reporter.file_started(name, size);
        }
    }

    fn file_progress(&self, bytes: u64) {
        if self.sending {
            self.reporter.file_progress(bytes);
        }
    }

    fn file_finished(&self) {
        if self.sending {
            self.reporter.file_finished();
        }
    }

    fn shows_progress(&self) -> bool {
        self.reporter.shows_progress()
    }

    fn expect(&self, files: u64, bytes: u64) {
        self.reporter.expect(files, bytes);
    }
}
