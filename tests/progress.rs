//! The progress meter on a real (pseudo-)terminal, read back as a screen.

mod common;

use std::fs;
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use portable_pty::{CommandBuilder, PtySize, native_pty_system};
use regex::Regex;

/// A finished run on a pseudo-terminal: its exit code, every byte it wrote,
/// and the screen those bytes leave.
struct Screen {
    code: u32,
    raw: String,
    lines: Vec<String>,
}

/// Runs rscp with `args` on a `rows` x `cols` terminal. `during` is called
/// with a resize function and the output so far while it runs.
fn on_terminal(
    home: &Home,
    args: &[String],
    (rows, cols): (u16, u16),
    during: impl FnOnce(&dyn Fn(u16, u16), &dyn Fn() -> String, u32),
) -> Screen {
    let pty = native_pty_system();
    let pair = pty
        .openpty(PtySize {
            rows,
            cols,
            pixel_width: 0,
            pixel_height: 0,
        })
        .expect("openpty");
    let mut command = CommandBuilder::new(rscp_path());
    command.args(args);
    command.env("HOME", home.dir.path());
    command.env_remove("SSH_AUTH_SOCK");
    let mut child = pair.slave.spawn_command(command).expect("spawn on pty");
    drop(pair.slave);
    let output = Arc::new(Mutex::new(Vec::new()));
    let mut reader = pair.master.try_clone_reader().expect("pty reader");
    let sink = output.clone();
    let collector = std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let master = &pair.master;
    // Where in the output each resize happened, to replay it there.
    let resizes = Mutex::new(Vec::<(usize, u16, u16)>::new());
    let resize = |rows: u16, cols: u16| {
        resizes
            .lock()
            .unwrap()
            .push((output.lock().unwrap().len(), rows, cols));
        master
            .resize(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("resize");
    };
    let so_far = || String::from_utf8_lossy(&output.lock().unwrap()).into_owned();
    let pid = child.process_id().unwrap_or(0);
    during(&resize, &so_far, pid);
    let status = child.wait().expect("wait");
    drop(pair.master);
    let _ = collector.join();
    let bytes = output.lock().unwrap().clone();
    let lines = replay(&bytes, (rows, cols), &resizes.lock().unwrap());
    Screen {
        code: status.exit_code(),
        raw: String::from_utf8_lossy(&bytes).into_owned(),
        lines,
    }
}

/// The rows of the screen that `bytes` leave on a terminal of `size`,
/// resized at the given offsets; trailing blanks trimmed.
fn replay(bytes: &[u8], size: (u16, u16), resizes: &[(usize, u16, u16)]) -> Vec<String> {
    let nonzero = |n: u16| std::num::NonZeroU16::new(n).expect("non-zero size");
    let mut parser = vt100::Parser::new(nonzero(size.0), nonzero(size.1), 0);
    let mut fed = 0;
    let mut cols = size.1;
    for &(at, rows, new_cols) in resizes {
        parser.process(&bytes[fed..at]);
        fed = at;
        parser
            .screen_mut()
            .set_size(nonzero(rows), nonzero(new_cols));
        cols = new_cols;
    }
    parser.process(&bytes[fed..]);
    parser
        .screen()
        .rows(0, cols)
        .map(|row| row.trim_end().to_owned())
        .collect()
}

fn waiting_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// scp's finished line: the name padded to `width - 36`, then 100%, size,
/// rate and elapsed time.
fn finished_line(name: &str, width: usize) -> Regex {
    let field = width - 36;
    Regex::new(&format!(
        r"^{name} {{{}}} 100% [ \d]{{4}}[ KMGT][B ] [ \d]{{3}}\.\d[KMGT]B/s   \d\d:\d\d$",
        field - name.len()
    ))
    .unwrap()
}

fn files(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let big = dir.join("big.bin");
    write(&big, &pattern(40 << 20, 1));
    let small = dir.join("small.bin");
    write(&small, &pattern(5000, 2));
    let empty = dir.join("empty.bin");
    write(&empty, b"");
    (big, small, empty)
}

#[test]
fn per_file_lines_have_scps_shape_and_the_total_line_goes() {
    let Some(sshd) = Sshd::start() else { return };
    let home = Home::for_sshd(&sshd, "");
    let work = tempfile::tempdir().unwrap();
    let (big, small, empty) = files(work.path());
    let into = work.path().join("into");
    fs::create_dir(&into).unwrap();
    let args: Vec<String> = vec![
        big.display().to_string(),
        small.display().to_string(),
        empty.display().to_string(),
        format!("fixture:{}", into.display()),
    ];
    let screen = on_terminal(&home, &args, (24, 100), |_, _, _| {});
    assert_eq!(screen.code, 0, "{}", screen.raw);
    let shown: Vec<&String> = screen.lines.iter().filter(|l| !l.is_empty()).collect();
    assert_eq!(shown.len(), 3, "screen:\n{}", screen.lines.join("\n"));
    for (line, name) in shown.iter().zip(["big.bin", "small.bin", "empty.bin"]) {
        assert!(finished_line(name, 100).is_match(line), "{line:?}");
    }
    assert!(shown[1].contains(" 100% 5000  "), "{}", shown[1]);
    assert!(
        shown[2].ends_with(" 100%    0     0.0KB/s   00:00"),
        "{}",
        shown[2]
    );
    // The total line was there while it ran, with the total known.
    assert!(
        screen.raw.contains("total: 0/3 files"),
        "no total line in:\n{}",
        screen.raw
    );
    assert!(
        !screen.lines.iter().any(|l| l.starts_with("total:")),
        "total line left behind"
    );

    // Downloads: counted as they come (no ETA, no file count ahead).
    let back = work.path().join("back");
    fs::create_dir(&back).unwrap();
    let args: Vec<String> = vec![
        format!("fixture:{}", into.join("big.bin").display()),
        format!("fixture:{}", into.join("small.bin").display()),
        back.display().to_string(),
    ];
    let screen = on_terminal(&home, &args, (24, 100), |_, _, _| {});
    assert_eq!(screen.code, 0, "{}", screen.raw);
    let shown: Vec<&String> = screen.lines.iter().filter(|l| !l.is_empty()).collect();
    assert_eq!(shown.len(), 2, "screen:\n{}", screen.lines.join("\n"));
    assert!(
        finished_line("big.bin", 100).is_match(shown[0]),
        "{:?}",
        shown[0]
    );
    assert!(
        screen.raw.contains("total: 1 files"),
        "no total line in:\n{}",
        screen.raw
    );
}

#[test]
fn one_file_has_no_total_line() {
    let Some(sshd) = Sshd::start() else { return };
    let home = Home::for_sshd(&sshd, "");
    let work = tempfile::tempdir().unwrap();
    let (big, _, _) = files(work.path());
    let args = vec![
        big.display().to_string(),
        format!("fixture:{}", work.path().join("copy").display()),
    ];
    let screen = on_terminal(&home, &args, (24, 80), |_, _, _| {});
    assert_eq!(screen.code, 0);
    assert!(!screen.raw.contains("total:"), "{}", screen.raw);
    assert!(
        finished_line("big.bin", 80).is_match(&screen.lines[0]),
        "{:?}",
        screen.lines[0]
    );
}

#[test]
fn the_meter_follows_a_resize() {
    let Some(sshd) = Sshd::start() else { return };
    let home = Home::for_sshd(&sshd, "");
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("slow.bin");
    write(&file, &pattern(1_500_000, 3));
    // 4000 Kbit/s is 500 KiB/s: about three seconds.
    let args = vec![
        "-l".into(),
        "4000".into(),
        file.display().to_string(),
        format!("fixture:{}", work.path().join("copy").display()),
    ];
    let screen = on_terminal(&home, &args, (24, 100), |resize, so_far, _| {
        waiting_for("the meter", Duration::from_secs(20), || {
            so_far().contains("slow.bin")
        });
        std::thread::sleep(Duration::from_millis(1200));
        resize(24, 60);
    });
    assert_eq!(screen.code, 0, "{}", screen.raw);
    // The last line is drawn for 60 columns.
    let last = screen
        .lines
        .iter()
        .rev()
        .find(|l| l.contains("slow.bin"))
        .unwrap();
    assert!(finished_line("slow.bin", 60).is_match(last), "{last:?}");
    // And the meter was redrawn at the narrower width while it ran.
    let narrow = Regex::new(r"slow\.bin {16}\s+\d+% ").unwrap();
    assert!(
        narrow.is_match(&screen.raw),
        "no redraw at 60 columns:\n{}",
        screen.raw
    );
}

#[test]
fn escapes_in_names_never_reach_the_terminal() {
    let Some(sshd) = Sshd::start() else { return };
    let home = Home::for_sshd(&sshd, "");
    let work = tempfile::tempdir().unwrap();
    let evil = work.path().join("a\x1b]0;pwned\x07b");
    write(&evil, b"data");
    let args = vec![
        evil.display().to_string(),
        format!("fixture:{}", work.path().join("copy").display()),
    ];
    let screen = on_terminal(&home, &args, (24, 80), |_, _, _| {});
    assert_eq!(screen.code, 0);
    assert!(
        !screen.raw.contains("\x1b]0;pwned"),
        "raw escape reached the terminal"
    );
    assert!(
        screen.lines[0].starts_with("a\\033]0;pwned\\007b "),
        "{:?}",
        screen.lines[0]
    );
}

#[test]
fn quiet_draws_nothing() {
    let Some(sshd) = Sshd::start() else { return };
    let home = Home::for_sshd(&sshd, "");
    let work = tempfile::tempdir().unwrap();
    let (big, _, _) = files(work.path());
    let args = vec![
        "-q".into(),
        big.display().to_string(),
        format!("fixture:{}", work.path().join("copy").display()),
    ];
    let screen = on_terminal(&home, &args, (24, 80), |_, _, _| {});
    assert_eq!(screen.code, 0);
    assert_eq!(screen.raw, "");
}

#[test]
fn a_stalled_transfer_says_so() {
    let Some(sshd) = Sshd::start() else { return };
    let work = tempfile::tempdir().unwrap();
    let pidfile = work.path().join("proxy.pid");
    let proxy = work.path().join("proxy.sh");
    fs::write(
        &proxy,
        format!(
            "#!/bin/bash\necho $$ > '{}'\nexec 3<>/dev/tcp/$1/$2\ncat <&3 &\nexec cat >&3\n",
            pidfile.display()
        ),
    )
    .unwrap();
    chmod(&proxy, 0o755);
    let home = Home::for_sshd(
        &sshd,
        &format!("Host fixture\n\tProxyCommand {} %h %p\n", proxy.display()),
    );
    let file = work.path().join("stall.bin");
    write(&file, &pattern(3_000_000, 4));
    let args = vec![
        "-l".into(),
        "8000".into(),
        file.display().to_string(),
        format!("fixture:{}", work.path().join("copy").display()),
    ];
    let screen = on_terminal(&home, &args, (24, 100), |_, so_far, _| {
        waiting_for("the meter", Duration::from_secs(20), || {
            so_far().contains("stall.bin")
        });
        let group: i32 = fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let group = nix::unistd::Pid::from_raw(group);
        nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGSTOP).unwrap();
        waiting_for("- stalled -", Duration::from_secs(15), || {
            so_far().contains("- stalled -")
        });
        nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGCONT).unwrap();
    });
    assert_eq!(screen.code, 0, "{}", screen.raw);
    assert!(screen.raw.contains("- stalled -"));
}

#[test]
fn a_signal_leaves_the_line_and_ends_the_run() {
    let Some(sshd) = Sshd::start() else { return };
    let home = Home::for_sshd(&sshd, "");
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("long.bin");
    write(&file, &pattern(5_000_000, 5));
    let args = vec![
        "-l".into(),
        "2000".into(),
        file.display().to_string(),
        format!("fixture:{}", work.path().join("copy").display()),
    ];
    let mut sent = None;
    let screen = on_terminal(&home, &args, (24, 100), |_, so_far, pid| {
        waiting_for("the meter", Duration::from_secs(20), || {
            so_far().contains("long.bin")
        });
        std::thread::sleep(Duration::from_millis(1500));
        sent = Some(Instant::now());
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap();
    });
    let took = sent.unwrap().elapsed();
    assert_eq!(screen.code, 1);
    // Not a speed: the upload stalls for good unless the signal ends it.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    // The meter's line is left as it was, and the screen goes on below it.
    let line = screen
        .lines
        .iter()
        .find(|l| l.contains("long.bin"))
        .unwrap();
    assert!(
        Regex::new(r"^long\.bin +\d+% ").unwrap().is_match(line),
        "{line:?}"
    );
    assert!(!line.contains("100%"), "{line:?}");
}
