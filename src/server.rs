//! Server mode: `rscp -t` and `rscp -f`, started by a remote scp (or rscp)
//! over ssh, speaking the protocol on stdin and stdout.

use std::path::Path;

use crate::cli::{Invocation, Role};
use crate::events::Events;
use crate::scp::{Sink, SinkOptions, Source, SourceOptions};

/// Runs the server side; true when everything was copied.
pub async fn run(invocation: &Invocation, events: &dyn Events, umask: u32) -> bool {
    let stdin = tokio::io::stdin();
    let stdout = tokio::io::stdout();
    match invocation.role {
        Role::Sink => {
            let [target] = invocation.operands.as_slice() else {
                let sink = Sink::new(stdin, stdout, SinkOptions::default(), events);
                sink.refuse("ambiguous target").await;
                return false;
            };
            let options = SinkOptions {
                recursive: invocation.recursive,
                preserve: invocation.preserve,
                target_must_be_directory: invocation.target_must_be_directory,
                umask,
                filter: None,
                limit: None,
                // The client hears of each refusal, as from scp.
                replies_ahead: 0,
            };
            let sink = Sink::new(stdin, stdout, options, events);
            matches!(sink.run(Path::new(target)).await, Ok(summary) if summary.errors == 0)
        }
        Role::Source => {
            let options = SourceOptions {
                recursive: invocation.recursive,
                preserve: invocation.preserve,
                limit: None,
            };
            let mut source = Source::new(stdin, stdout, options, events);
            if let Err(error) = source.start().await {
                source.abort(&error).await;
                return false;
            }
            for path in &invocation.operands {
                if let Err(error) = source.send(Path::new(path)).await {
                    source.abort(&error).await;
                    return false;
                }
            }
            if let Err(error) = source.settle().await {
                source.abort(&error).await;
                return false;
            }
            // The client sees the end of the stream when this process exits.
            source.summary().errors == 0
        }
        Role::Client => false,
    }
}
