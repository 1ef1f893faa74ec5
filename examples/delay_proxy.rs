//! A TCP relay on 127.0.0.1 that holds every byte for a fixed one-way delay
//! in each direction, so `scripts/bench` can measure copies over a long
//! round trip without touching the machine's network settings (no `tc`).
//! Bandwidth is not limited: only latency is added, which is what caps a
//! transfer by its SSH channel window.
//!
//! Usage: delay_proxy TARGET_PORT ONE_WAY_MILLISECONDS
//! Prints the port it listens on as the first line of stdout.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

const READ_SIZE: usize = 256 * 1024;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [target_port, delay_ms] = args.as_slice() else {
        anyhow::bail!("usage: delay_proxy TARGET_PORT ONE_WAY_MILLISECONDS");
    };
    let target_port: u16 = target_port.parse()?;
    let delay = Duration::from_millis(delay_ms.parse()?);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            println!("{}", listener.local_addr()?.port());
            serve(listener, target_port, delay).await
        })
}

/// Relays every connection to `listener` to 127.0.0.1:`target_port`.
/// (tests/native.rs runs this in-process.)
pub async fn serve(listener: TcpListener, target_port: u16, delay: Duration) -> anyhow::Result<()> {
    loop {
        let (client, _) = listener.accept().await?;
        tokio::spawn(async move {
            if let Err(error) = relay(client, target_port, delay).await {
                eprintln!("delay_proxy: {error}");
            }
        });
    }
}

async fn relay(client: TcpStream, target_port: u16, delay: Duration) -> anyhow::Result<()> {
    let server = TcpStream::connect(("127.0.0.1", target_port)).await?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let upstream = tokio::spawn(delayed_pipe(client_read, server_write, delay));
    let downstream = tokio::spawn(delayed_pipe(server_read, client_write, delay));
    upstream.await??;
    downstream.await??;
    Ok(())
}

/// Copies `from` to `to`, releasing each piece `delay` after it arrived.
/// `None` in the queue stands for end of stream.
async fn delayed_pipe(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    delay: Duration,
) -> anyhow::Result<()> {
    let (queue, mut queued) = mpsc::unbounded_channel::<(Instant, Option<Bytes>)>();
    let writer = tokio::spawn(async move {
        while let Some((due, piece)) = queued.recv().await {
            tokio::time::sleep_until(due).await;
            match piece {
                Some(piece) => to.write_all(&piece).await?,
                None => break,
            }
        }
        to.shutdown().await
    });
    loop {
        let mut buffer = BytesMut::with_capacity(READ_SIZE);
        let read = from.read_buf(&mut buffer).await.unwrap_or(0);
        let due = Instant::now() + delay;
        let piece = (read > 0).then(|| buffer.freeze());
        let ended = piece.is_none();
        if queue.send((due, piece)).is_err() || ended {
            break;
        }
    }
    writer.await??;
    Ok(())
}
