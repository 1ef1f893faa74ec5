use std::process::ExitCode;
use std::time::Duration;

use nix::sys::stat::{Mode, umask};
use tokio::signal::unix::{SignalKind, signal};

use rscp::cli::{self, CliError, Invocation, Request, Role};
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
        Err(error) => {
            match &error {
                CliError::Usage(message) => {
                    if let Some(message) = message {
                        report::error(message);
                    }
                    eprint_usage();
                }
                CliError::Fatal(message) => report::error(message),
                CliError::Unsupported(letter) => {
                    report::error(&format!("option -{letter} is not supported yet"));
                }
            }
            return ExitCode::from(error.exit_code());
        }
    };
    if run(&invocation) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn run(invocation: &Invocation) -> bool {
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
            return false;
        }
    };
    let events = Reporter {
        server: invocation.role != Role::Client,
        verbose: invocation.verbose > 0,
    };
    let ok = runtime.block_on(async {
        let interrupted = interrupted();
        let work = async {
            match invocation.role {
                Role::Client => rscp::client::run(invocation, &events, umask_bits).await,
                Role::Sink | Role::Source => {
                    rscp::server::run(invocation, &events, umask_bits).await
                }
            }
        };
        tokio::select! {
            ok = work => ok,
            () = interrupted => {
                children::terminate_all();
                false
            }
        }
    });
    // Do not wait for a disk write that may never finish.
    runtime.shutdown_timeout(Duration::from_millis(100));
    ok
}

/// Resolves on SIGINT, SIGTERM or SIGHUP. If the handlers cannot be set up,
/// never resolves (the default dispositions still end the process).
async fn interrupted() {
    let kinds = [
        SignalKind::interrupt(),
        SignalKind::terminate(),
        SignalKind::hangup(),
    ];
    let mut streams = Vec::new();
    for kind in kinds {
        if let Ok(stream) = signal(kind) {
            streams.push(stream);
        }
    }
    if streams.is_empty() {
        return std::future::pending().await;
    }
    let waits = streams.iter_mut().map(|s| Box::pin(s.recv()));
    futures_select_all(waits).await;
}

/// Waits for the first of several futures.
async fn futures_select_all<F: std::future::Future + Unpin>(futures: impl Iterator<Item = F>) {
    let mut futures: Vec<F> = futures.collect();
    std::future::poll_fn(|cx| {
        for f in futures.iter_mut() {
            if std::pin::Pin::new(f).poll(cx).is_ready() {
                return std::task::Poll::Ready(());
            }
        }
        std::task::Poll::Pending
    })
    .await
}

fn eprint_usage() {
    use std::io::Write;
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{}", cli::USAGE);
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
