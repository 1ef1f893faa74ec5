//! Child processes that must not outlive rscp: on SIGINT, SIGTERM or SIGHUP
//! they are terminated and reaped before rscp exits, as scp does with its
//! ssh.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

static RUNNING: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// How long a child gets to exit after SIGTERM before SIGKILL.
const GRACE: Duration = Duration::from_millis(500);

fn running() -> std::sync::MutexGuard<'static, Vec<u32>> {
    RUNNING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn register(pid: u32) {
    running().push(pid);
}

/// The child was waited for normally.
pub fn forget(pid: u32) {
    running().retain(|&p| p != pid);
}

/// Terminates and reaps every registered child. Used on the way out after
/// a signal, when nothing else will wait for them.
pub fn terminate_all() {
    let pids: Vec<Pid> = std::mem::take(&mut *running())
        .into_iter()
        .filter_map(|p| i32::try_from(p).ok().map(Pid::from_raw))
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
