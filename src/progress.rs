//! The progress meter: scp's per-file line, and (beyond scp) a total line
//! for runs of several files, cleared at the end.
//!
//! The figures are computed exactly as scp's progressmeter.c computes them
//! (its 1024-based sizes, its aged rate, its ETA and "- stalled -"); the
//! lines are drawn with indicatif. Nothing in the protocol engine knows
//! about any of this: it reports through [`crate::events::Events`].

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use unicode_width::UnicodeWidthChar;

use crate::escape::for_terminal;
use crate::events::FileId;

/// scp's units: bytes, then K, M, G, T (1024-based).
const UNITS: [char; 5] = [' ', 'K', 'M', 'G', 'T'];

/// After this long without a byte, the ETA gives way to "- stalled -".
const STALL_SECONDS: f64 = 5.0;

/// How much of the previous rate survives each refresh (scp's AGE_FACTOR).
const AGE_FACTOR: f64 = 0.9;

pub const REFRESH: Duration = Duration::from_secs(1);

/// `4883KB`: four digits, a unit letter, and `B` (or a space for bytes).
pub fn format_size(mut bytes: u64) -> String {
    let mut unit = 0;
    while bytes >= 10_000 && unit < UNITS.len() - 1 {
        bytes = bytes.saturating_add(512) / 1024;
        unit += 1;
    }
    format!(
        "{:4}{}{}",
        bytes,
        UNITS[unit],
        if unit > 0 { "B" } else { " " }
    )
}

/// ` 23.8MB`: a rate with one decimal, in KB at the least.
pub fn format_rate(bytes: u64) -> String {
    let mut hundredths = bytes.saturating_mul(100);
    let mut unit = 0;
    while hundredths >= 100 * 1000 && unit < UNITS.len() - 1 {
        hundredths = hundredths.saturating_add(512) / 1024;
        unit += 1;
    }
    if unit == 0 {
        unit = 1;
        hundredths = hundredths.saturating_add(512) / 1024;
    }
    format!(
        "{:3}.{}{}{}",
        hundredths.saturating_add(5) / 100,
        hundredths.saturating_add(5) / 10 % 10,
        UNITS[unit],
        if unit > 0 { "B" } else { " " }
    )
}

/// `  01:23` or `1:02:03`.
fn format_duration(seconds: u64) -> String {
    let (hours, minutes, seconds) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if hours != 0 {
        format!("{hours}:{minutes:02}:{seconds:02}")
    } else {
        format!("  {minutes:02}:{seconds:02}")
    }
}

/// `name` cut or padded to exactly `columns` display columns.
fn fit(name: &str, columns: usize) -> String {
    let mut out = String::new();
    let mut used = 0;
    for ch in name.chars() {
        let w = ch.width().unwrap_or(0);
        if used + w > columns {
            break;
        }
        out.push(ch);
        used += w;
    }
    out.extend(std::iter::repeat_n(' ', columns - used));
    out
}

/// One file's meter state, as scp keeps it.
#[derive(Debug, Clone)]
pub struct FileMeter {
    /// Escaped for the terminal.
    name: String,
    size: u64,
    done: u64,
    start: Instant,
    last_update: Instant,
    /// `done` at the last refresh.
    shown: u64,
    bytes_per_second: f64,
    stalled: f64,
}

impl FileMeter {
    pub fn new(name: &[u8], size: u64, now: Instant) -> FileMeter {
        FileMeter {
            name: for_terminal(name),
            size,
            done: 0,
            start: now,
            last_update: now,
            shown: 0,
            bytes_per_second: 0.0,
            stalled: 0.0,
        }
    }

    pub fn add(&mut self, bytes: u64) {
        self.done = self.done.saturating_add(bytes);
    }

    pub fn done(&self) -> u64 {
        self.done
    }

    /// scp's refresh: updates the rate and returns the line for a terminal
    /// `width` columns wide (`None` if too narrow to show anything).
    pub fn refresh(&mut self, now: Instant, width: usize) -> Option<String> {
        let mut transferred = self.done.saturating_sub(self.shown);
        self.shown = self.done;
        let bytes_left = self.size.saturating_sub(self.shown);
        let elapsed = if bytes_left > 0 {
            now.duration_since(self.last_update).as_secs_f64()
        } else {
            // Done: the true average over the whole file.
            transferred = self.size;
            self.bytes_per_second = 0.0;
            now.duration_since(self.start).as_secs_f64()
        };
        let current = if elapsed > 0.0 {
            (transferred as f64 / elapsed).trunc()
        } else {
            transferred as f64
        };
        self.bytes_per_second = if self.bytes_per_second != 0.0 {
            self.bytes_per_second * AGE_FACTOR + current * (1.0 - AGE_FACTOR)
        } else {
            current
        };
        self.last_update = now;
        if width < 4 {
            return None;
        }

        let mut line = String::new();
        if let Some(name_columns) = width.checked_sub(36).filter(|&c| c > 0) {
            line.push_str(&fit(&self.name, name_columns));
        }
        let percent = if self.size == 0 || self.shown == self.size {
            100
        } else {
            (self.shown as f32 / self.size as f32 * 100.0) as u32
        };
        line.push_str(&format!(
            " {percent:3}% {} {}/s ",
            format_size(self.shown),
            format_rate(self.bytes_per_second as u64)
        ));
        if transferred == 0 {
            self.stalled += elapsed;
        } else {
            self.stalled = 0.0;
        }
        if self.stalled >= STALL_SECONDS {
            line.push_str("- stalled -");
        } else if self.bytes_per_second == 0.0 && bytes_left > 0 {
            line.push_str("  --:-- ETA");
        } else {
            let seconds = if bytes_left > 0 {
                (bytes_left as f64 / self.bytes_per_second) as u64
            } else {
                elapsed as u64
            };
            line.push_str(&format_duration(seconds));
            line.push_str(if bytes_left > 0 { " ETA" } else { "    " });
        }
        Some(line)
    }
}

/// The run as a whole, for the total line.
#[derive(Debug, Clone)]
struct Totals {
    started: Instant,
    files_done: u64,
    bytes_done: u64,
    /// Known for uploads (counted before they start).
    expected: Option<(u64, u64)>,
}

impl Totals {
    fn line(&self, current: u64, now: Instant, width: usize) -> String {
        let bytes = self.bytes_done + current;
        let elapsed = now.duration_since(self.started).as_secs_f64();
        let rate = if elapsed > 0.0 {
            bytes as f64 / elapsed
        } else {
            0.0
        };
        let text = match self.expected {
            Some((files, total)) => {
                let eta = if rate > 0.0 && total > bytes {
                    format!(
                        "{} ETA",
                        format_duration(((total - bytes) as f64 / rate) as u64).trim_start()
                    )
                } else {
                    "--:-- ETA".into()
                };
                format!(
                    "total: {}/{} files {} of {} {}/s {}",
                    self.files_done,
                    files,
                    format_size(bytes).trim(),
                    format_size(total).trim(),
                    format_rate(rate as u64).trim(),
                    eta
                )
            }
            None => format!(
                "total: {} files {} {}/s",
                self.files_done,
                format_size(bytes).trim(),
                format_rate(rate as u64).trim()
            ),
        };
        fit(&text, width.saturating_sub(1)).trim_end().to_owned()
    }
}

/// The meter on the terminal.
pub struct Meter {
    multi: MultiProgress,
    state: Mutex<State>,
}

struct State {
    width: usize,
    /// The files in flight, oldest first, each with its line.
    files: Vec<(FileId, ProgressBar, FileMeter)>,
    total_bar: Option<ProgressBar>,
    totals: Totals,
}

impl Meter {
    /// A meter if scp would show one: stdout is a terminal, this process
    /// is in its foreground, and `-q` was not given.
    pub fn for_terminal(quiet: bool) -> Option<Meter> {
        let stdout = std::io::stdout();
        if quiet || !stdout.is_terminal() || !in_foreground() {
            return None;
        }
        Some(Meter::new(Meter::screen(), terminal_width()))
    }

    fn screen() -> ProgressDrawTarget {
        ProgressDrawTarget::stdout_with_hz(4)
    }

    fn new(target: ProgressDrawTarget, width: usize) -> Meter {
        Meter {
            multi: MultiProgress::with_draw_target(target),
            state: Mutex::new(State {
                width,
                files: Vec::new(),
                total_bar: None,
                totals: Totals {
                    started: Instant::now(),
                    files_done: 0,
                    bytes_done: 0,
                    expected: None,
                },
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn bar(&self) -> ProgressBar {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    }

    /// Files and bytes to expect, when known before the copy starts.
    pub fn expect(&self, files: u64, bytes: u64) {
        self.state().totals.expected = Some((files, bytes));
    }

    pub fn file_started(&self, file: FileId, name: &[u8], size: u64) {
        let mut state = self.state();
        let now = Instant::now();
        let several = match state.totals.expected {
            Some((files, _)) => files > 1,
            None => state.totals.files_done >= 1,
        };
        if several && state.total_bar.is_none() {
            state.total_bar = Some(self.multi.add(self.bar()));
        }
        let bar = match &state.total_bar {
            Some(total) => self.multi.insert_before(total, self.bar()),
            None => self.multi.add(self.bar()),
        };
        let mut meter = FileMeter::new(name, size, now);
        if let Some(line) = meter.refresh(now, state.width) {
            bar.set_message(line);
        }
        state.files.push((file, bar, meter));
        self.update_total(&mut state, now);
    }

    pub fn file_progress(&self, file: FileId, bytes: u64) {
        let mut state = self.state();
        if let Some((_, _, meter)) = state.files.iter_mut().find(|(id, ..)| *id == file) {
            meter.add(bytes);
        }
    }

    /// The file's last line stays on the screen, as scp leaves it.
    pub fn file_finished(&self, file: FileId) {
        let mut state = self.state();
        let now = Instant::now();
        let width = state.width;
        let Some(index) = state.files.iter().position(|(id, ..)| *id == file) else {
            return;
        };
        let (_, bar, mut meter) = state.files.remove(index);
        let line = meter.refresh(now, width).unwrap_or_default();
        bar.finish_and_clear();
        self.multi.remove(&bar);
        let _ = self.multi.println(line);
        state.totals.files_done += 1;
        state.totals.bytes_done += meter.done();
        self.update_total(&mut state, now);
    }

    /// The once-a-second refresh (and a forced one on window resize).
    pub fn tick(&self) {
        let mut state = self.state();
        let now = Instant::now();
        let width = state.width;
        for (_, bar, meter) in state.files.iter_mut() {
            if let Some(line) = meter.refresh(now, width) {
                bar.set_message(line);
            }
        }
        self.update_total(&mut state, now);
    }

    pub fn resized(&self) {
        self.state().width = terminal_width();
        self.tick();
    }

    fn update_total(&self, state: &mut State, now: Instant) {
        let current = state.files.iter().map(|(_, _, m)| m.done()).sum();
        if let Some(total) = &state.total_bar {
            total.set_message(state.totals.line(current, now, state.width));
        }
    }

    /// Runs `f` (which writes to stderr) with the bars out of the way.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.multi.suspend(f)
    }

    /// Takes the bars off the screen, and keeps them off until the guard
    /// goes (while the user answers a question on the terminal). Unlike
    /// [`Meter::suspend`], the redraws meanwhile do not wait for it.
    pub fn hold(&self) -> Hold<'_> {
        let _ = self.multi.clear();
        self.multi.set_draw_target(ProgressDrawTarget::hidden());
        Hold { meter: self }
    }

    /// The end of the run: the total line goes, the file lines stay.
    pub fn finish(&self) {
        let mut state = self.state();
        for (_, bar, _) in state.files.drain(..) {
            bar.abandon();
        }
        if let Some(total) = state.total_bar.take() {
            total.finish_and_clear();
        }
    }
}

/// The bars are off the screen while this lives (see [`Meter::hold`]).
pub struct Hold<'a> {
    meter: &'a Meter,
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        self.meter.multi.set_draw_target(Meter::screen());
    }
}

/// scp draws only when it owns the terminal (not when run in the background).
fn in_foreground() -> bool {
    match nix::unistd::tcgetpgrp(std::io::stdout()) {
        Ok(group) => group == nix::unistd::getpgrp(),
        Err(_) => false,
    }
}

fn terminal_width() -> usize {
    terminal_size::terminal_size_of(std::io::stdout())
        .map(|(w, _)| usize::from(w.0))
        .unwrap_or(80)
        .min(512)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_scp() {
        assert_eq!(format_size(0), "   0  ");
        assert_eq!(format_size(5000), "5000  ");
        assert_eq!(format_size(9999), "9999  ");
        assert_eq!(format_size(10_000), "  10KB");
        assert_eq!(format_size(5_000_000), "4883KB");
        assert_eq!(format_size(300_000_000), " 286MB");
        // Far beyond any real file: still a number in TB, no overflow.
        assert!(format_size(u64::MAX).ends_with("TB"));
        assert!(format_rate(u64::MAX).ends_with("TB"));
    }

    #[test]
    fn rates_like_scp() {
        assert_eq!(format_rate(0), "  0.0KB");
        assert_eq!(format_rate(1024), "  1.0KB");
        assert_eq!(format_rate(1_048_576), "  1.0MB");
        assert_eq!(format_rate(25_000_000), " 23.8MB");
        assert_eq!(format_rate(12_700_000), " 12.1MB");
    }

    #[test]
    fn durations() {
        assert_eq!(format_duration(0), "  00:00");
        assert_eq!(format_duration(611), "  10:11");
        assert_eq!(format_duration(3723), "1:02:03");
    }

    #[test]
    fn lines_have_scps_layout() {
        let start = Instant::now();
        let mut meter = FileMeter::new(b"med.bin", 300_000_000, start);
        // The first draw, before any byte (scp's captured output, 100 cols).
        assert_eq!(
            meter.refresh(start, 100).unwrap(),
            format!("{:64}   0%    0     0.0KB/s   --:-- ETA", "med.bin")
        );
        meter.add(25_000_000);
        let line = meter.refresh(start + Duration::from_secs(1), 100).unwrap();
        assert_eq!(
            line,
            format!("{:64}   8%   24MB  23.8MB/s   00:11 ETA", "med.bin")
        );
        meter.add(275_000_000);
        let line = meter.refresh(start + Duration::from_secs(11), 100).unwrap();
        assert_eq!(
            line,
            format!("{:64} 100%  286MB  26.0MB/s   00:11    ", "med.bin")
        );
    }

    #[test]
    fn stalls_and_hours() {
        let start = Instant::now();
        let mut meter = FileMeter::new(b"slow", 10_000_000_000, start);
        meter.add(1000);
        meter.refresh(start + Duration::from_secs(1), 80);
        for second in 2..=6 {
            let line = meter
                .refresh(start + Duration::from_secs(second), 80)
                .unwrap();
            if second == 6 {
                assert!(line.ends_with("- stalled -"), "{line}");
            }
        }
        let line = meter.refresh(start + Duration::from_secs(7), 80).unwrap();
        assert!(line.ends_with("- stalled -"), "{line}");
        meter.add(1000);
        let line = meter.refresh(start + Duration::from_secs(8), 80).unwrap();
        assert!(line.ends_with(" ETA") && line.contains(':'), "{line}");
    }

    #[test]
    fn names_are_fitted_and_escaped() {
        let start = Instant::now();
        let mut meter = FileMeter::new("a\x1b[31mb-日本語-long-name".as_bytes(), 0, start);
        // 46 columns leave 10 for the name.
        let line = meter.refresh(start, 46).unwrap();
        assert!(line.starts_with("a\\033[31mb 100%"), "{line}");
        assert!(!line.contains('\x1b'));
        // Wide characters count two columns; the field is padded to fit.
        let mut wide = FileMeter::new("日本語日本語".as_bytes(), 0, start);
        let line = wide.refresh(start, 41).unwrap();
        assert!(line.starts_with("日本  100%"), "{line}");
        let mut narrow = FileMeter::new(b"x", 1, start);
        assert_eq!(narrow.refresh(start, 3), None);
        // Too narrow for a name: the figures alone.
        let line = narrow.refresh(start, 30).unwrap();
        assert!(line.starts_with("   0%"), "{line}");
    }

    #[test]
    fn empty_files_are_done_at_once() {
        let start = Instant::now();
        let mut meter = FileMeter::new(b"empty.bin", 0, start);
        assert_eq!(
            meter.refresh(start, 100).unwrap(),
            format!("{:64} 100%    0     0.0KB/s   00:00    ", "empty.bin")
        );
    }

    #[test]
    fn total_lines() {
        let start = Instant::now();
        let mut totals = Totals {
            started: start,
            files_done: 2,
            bytes_done: 2 << 20,
            expected: Some((5, 10 << 20)),
        };
        let line = totals.line(1 << 20, start + Duration::from_secs(3), 100);
        assert_eq!(line, "total: 2/5 files 3072KB of 10MB 1.0MB/s 00:07 ETA");
        totals.expected = None;
        let line = totals.line(0, start + Duration::from_secs(2), 100);
        assert_eq!(line, "total: 2 files 2048KB 1.0MB/s");
    }
}
