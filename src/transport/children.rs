//! Child processes that must not outlive rscp: on SIGINT, SIGTERM or SIGHUP
//! they are terminated and reaped before rscp exits, as scp does with its
//! ssh.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// Registered children; a group leader also takes its process group down.
static RUNNING: Mutex<Vec<Registered>> = Mutex::new(Vec::new());

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Registered {
    pid: u32,
    group: bool,
}

/// How long a child gets to exit after SIGTERM before SIGKILL.
const GRACE: Duration = Duration::from_millis(500);

fn running() -> std::sync::MutexGuard<'static, Vec<Registered>> {
    RUNNING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn register(pid: u32) {
    running().push(Registered { pid, group: false });
}

/// A child that leads its own process group (a ProxyCommand, which may be
/// a script with children of its own).
pub fn register_group(pid: u32) {
    running().push(Registered { pid, group: true });
}

/// The child was waited for normally.
pub fn forget(pid: u32) {
    running().retain(|r| r.pid != pid);
}

/// Sends `signal` to the process group that `leader` leads.
pub fn signal_group(leader: u32, signal: Signal) {
    if let Ok(pid) = i32::try_from(leader) {
        let _ = nix::sys::signal::killpg(Pid::from_raw(pid), signal);
    }
}

/// Terminates and reaps every registered child. Used on the way out after
/// a signal, when nothing else will wait for them.
pub fn terminate_all() {
    let registered = std::mem::take(&mut *running());
    for r in registered.iter().filter(|r| r.group) {
        signal_group(r.pid, Signal::SIGTERM);
    }
    let pids: Vec<Pid> = registered
        .iter()
        .filter_map(|r| i32::try_from(r.pid).ok().map(Pid::from_raw))
        .collect();
    for &pid in &pids {
        let _ = kill(pid, Signal::SIGTERM);
    }
    let deadline = Instant::now() + GRACE;
    for &pid in &pids {
        loop {
            match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(WaitStatus::StillAlive) => {
                    let _ = kill(pid, Signal::SIGKILL);
                    let _ = waitpid(pid, None);
                    break;
                }
                _ => break,
            }
        }
    }
}
