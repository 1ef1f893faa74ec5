use std::process::ExitCode;
use std::time::Duration;

use nix::sys::stat::{Mode, umask};
use tokio::signal::unix::{SignalKind, signal};

use std::sync::Arc;

use rscp::cli::{self, CliError, Invocation, Request, Role};
use rscp::client::Outcome;
use rscp::progress::{self, Meter};
use rscp::report::{self, Reporter};
use rscp::transport::children;

fn main() -> ExitCode {
    let invocation = match cli::parse(std::env::args_os().collect()) {
        Ok(Request::Copy(invocation)) => invocation,
        Ok(Request::Help) => {
            let help = cli::command().render_help().to_string();
            return print_stdout(&help);
        }
        Ok(Request::Version) => {
            return print_stdout(&format!("rscp {}\n", env!("CARGO_PKG_VERSION")));
        }
        Ok(Request::Generate(kind)) => {
            return match rscp::manual::generate(&kind) {
                Ok(text) => print_stdout(&String::from_utf8_lossy(&text)),
                Err(e) => {
                    report::error(&e.to_string());
                    ExitCode::from(1)
                }
            };
        }
        Err(error) => {
            match &error {
                CliError::Usage(message) => {
                    if let Some(message) = message {
                        report::error(message);
                    }
                    eprint_usage();
                }
                CliError::Fatal(message) => report::error(message),
            }
            return ExitCode::from(error.exit_code());
        }
    };
    ExitCode::from(run(&invocation))
}

/// Runs the copy; returns scp's exit status (0, 1, or 255).
fn run(invocation: &Invocation) -> u8 {
    // Read once, while there is only one thread: umask(2) can only be read
    // by setting it.
    let old = umask(Mode::empty());
    umask(old);
    let umask_bits = old.bits();

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            report::error(&format!("cannot start: {e}"));
            return 1;
        }
    };
    let meter = match invocation.role {
        Role::Client => Meter::for_terminal(invocation.quiet).map(Arc::new),
        Role::Sink | Role::Source => None,
    };
    if let Some(meter) = &meter {
        report::attach_meter(meter.clone());
    }
    let events = Reporter {
        server: invocation.role != Role::Client,
        verbose: invocation.verbose > 0,
    };
    let code = runtime.block_on(async {
        // Installed before any work starts, so that no child can be
        // started that a signal would leave behind.
        let interrupted = interrupted();
        if let Some(meter) = &meter {
            tokio::spawn(redraw(meter.clone()));
        }
        let work = async {
            match invocation.role {
                Role::Client => match rscp::client::run(invocation, &events, umask_bits).await {
                    Outcome::Copied => 0,
                    Outcome::Failed => 1,
                    Outcome::Fatal => 255,
                },
                Role::Sink | Role::Source => {
                    u8::from(!rscp::server::run(invocation, &events, umask_bits).await)
                }
            }
        };
        tokio::select! {
            code = work => code,
            () = interrupted => {
                children::terminate_all();
                1
            }
        }
    });
    // The file lines stay, the total line goes; on a signal the current
    // line is left as it was, and the shell's prompt starts on a new one.
    if let Some(meter) = &meter {
        meter.finish();
    }
    // Do not wait for a disk write that may never finish.
    runtime.shutdown_timeout(Duration::from_millis(100));
    code
}

/// Redraws the meter once a second, and at once when the window is resized.
async fn redraw(meter: Arc<Meter>) {
    let mut every_second = tokio::time::interval(progress::REFRESH);
    let mut resized = signal(SignalKind::window_change()).ok();
    loop {
        let resize = async {
            match resized.as_mut() {
                Some(stream) => {
                    stream.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = every_second.tick() => meter.tick(),
            () = resize => meter.resized(),
        }
    }
}

/// Sets up SIGINT, SIGTERM and SIGHUP handling now, and returns a future
/// that resolves when one arrives. If no handler can be set up, the future
/// never resolves (the default dispositions still end the process).
fn interrupted() -> impl std::future::Future<Output = ()> {
    let mut streams: Vec<_> = [
        SignalKind::interrupt(),
        SignalKind::terminate(),
        SignalKind::hangup(),
    ]
    .into_iter()
    .filter_map(|kind| signal(kind).ok())
    .collect();
    std::future::poll_fn(move |cx| {
        if streams.iter_mut().any(|s| s.poll_recv(cx).is_ready()) {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
}

fn eprint_usage() {
    report::usage(cli::USAGE);
}

fn print_stdout(text: &str) -> ExitCode {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
