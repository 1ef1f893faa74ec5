//! One SSH connection: reaching the host (directly, through ProxyCommand or
//! through ProxyJump hosts), checking its key, authenticating.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, Handle, Session};
use russh::keys::PublicKeyOrCertificate;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;

use super::algorithms;
use super::auth;
use super::greeting;
use super::host_key::{HostKeyPolicy, ServerKey, Verdict};
use super::known_hosts::{self, KnownHosts};
use super::log::Log;
use super::watchdog::WriteWatchdog;
use crate::config::{self, AddressFamily, Settings};

const MAX_PACKET_SIZE: u32 = 32 * 1024;

/// Used when ServerAliveInterval is not set, so that a peer that vanished
/// without closing the connection is noticed (ssh would wait for TCP).
const DEFAULT_ALIVE_INTERVAL: Duration = Duration::from_secs(15);

/// A byte stream to the server, whatever carries it.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// russh's handler: checks the host key with our policy.
pub struct Client {
    policy: Arc<HostKeyPolicy>,
    state: Arc<Mutex<HandshakeState>>,
    log: Log,
    /// With ForwardAgent: the local agent that forwarded requests reach.
    forwarded_agent: Option<std::path::PathBuf>,
    /// Set when the session ends, however it ends (the session task owns
    /// this handler and drops it then).
    ended: watch::Sender<bool>,
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.ended.send(true);
    }
}

/// An authenticated connection, and a way to learn that it has ended
/// (russh does not wake a writer waiting for window space on a dead peer).
pub struct Connection {
    pub handle: Handle<Client>,
    pub ended: watch::Receiver<bool>,
    /// As measured when connecting (see greeting.rs).
    pub round_trip: Option<std::time::Duration>,
}

#[derive(Debug, Default)]
pub struct HandshakeState {
    pub verdict: Option<Verdict>,
    /// The key accepted at the first exchange; re-keying shows it again.
    accepted: Option<ServerKey>,
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = ServerKey::from(key);
        let already = self
            .state
            .lock()
            .map(|s| s.accepted.clone())
            .unwrap_or_default();
        if let Some(accepted) = already {
            return Ok(accepted.public_key().key_data() == key.public_key().key_data());
        }
        let policy = self.policy.clone();
        let checked = key.clone();
        let verdict = tokio::task::spawn_blocking(move || policy.decide(&checked))
            .await
            .unwrap_or(Verdict::Refused);
        if let Ok(mut state) = self.state.lock() {
            state.verdict = Some(verdict);
            if verdict != Verdict::Refused {
                state.accepted = Some(key);
            }
        }
        Ok(verdict != Verdict::Refused)
    }

    async fn disconnected(
        &mut self,
        reason: client::DisconnectReason<Self::Error>,
    ) -> Result<(), Self::Error> {
        let _ = self.ended.send(true);
        match reason {
            client::DisconnectReason::ReceivedDisconnect(_) => Ok(()),
            client::DisconnectReason::Error(e) => Err(e),
        }
    }

    async fn auth_banner(
        &mut self,
        banner: &str,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if !self.log.quiet() {
            crate::report::remote(banner.as_bytes());
        }
        Ok(())
    }

    async fn server_channel_open_agent_forward(
        &mut self,
        channel: russh::Channel<client::Msg>,
        reply: client::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Only when asked for: a server cannot use the agent uninvited.
        let Some(socket) = self.forwarded_agent.clone() else {
            return Ok(());
        };
        reply.accept().await;
        tokio::spawn(async move {
            if let Ok(mut agent) = tokio::net::UnixStream::connect(&socket).await {
                let mut stream = channel.into_stream();
                let _ = tokio::io::copy_bidirectional(&mut stream, &mut agent).await;
            }
        });
        Ok(())
    }

    async fn kex_done(
        &mut self,
        _shared_secret: Option<&[u8]>,
        names: &russh::Names,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.log
            .debug1(&format!("kex: algorithm: {}", names.kex.as_ref()));
        self.log
            .debug1(&format!("kex: host key algorithm: {}", names.key.as_str()));
        // AEAD ciphers authenticate by themselves; ssh says so.
        let cipher = names.cipher.as_ref();
        let mac = if cipher.contains("gcm") || cipher.starts_with("chacha20-poly1305") {
            "<implicit>"
        } else {
            names.client_mac.as_ref()
        };
        self.log.debug1(&format!(
            "kex: cipher: {cipher} MAC: {mac} compression: {:?}",
            names.client_compression
        ));
        Ok(())
    }
}

/// What a connection needs besides the destination's own settings: how to
/// read the settings of jump hosts.
#[derive(Debug, Clone)]
pub struct Context {
    /// The request for the destination, to derive jump hosts' requests.
    pub template: config::Request,
}

/// Connects and authenticates. The error is the message for the user.
pub fn connect<'a>(
    settings: &'a Settings,
    context: &'a Context,
    log: Log,
) -> Pin<Box<dyn Future<Output = Result<Connection, String>> + Send + 'a>> {
    Box::pin(async move {
        let known = KnownHosts::load(
            &[
                settings.user_known_hosts_files.clone(),
                settings.global_known_hosts_files.clone(),
            ]
            .concat(),
        );
        let name = known_hosts::lookup_name(
            &settings.hostname,
            settings.port,
            settings.host_key_alias.as_deref(),
        );
        let fallback_name = known_hosts::fallback_name(
            &settings.hostname,
            settings.port,
            settings.host_key_alias.as_deref(),
        );
        let mut known_algorithms = known.known_algorithms(&name);
        if known_algorithms.is_empty()
            && let Some(fallback) = &fallback_name
        {
            known_algorithms = known.known_algorithms(fallback);
        }
        let preferred =
            algorithms::preferred(settings, &known_algorithms, known.has_authority_for(&name))?;
        let (stream, address, kernel_round_trip) = open_stream(settings, context, log).await?;
        let policy = HostKeyPolicy {
            address,
            principal: settings.hostname.clone(),
            strict: settings.strict_host_key_checking,
            batch_mode: settings.batch_mode,
            learn_to: settings.user_known_hosts_files.first().cloned(),
            hash: settings.hash_known_hosts,
            known,
            quiet: log.quiet(),
            name,
            fallback_name,
        };
        let state = Arc::new(Mutex::new(HandshakeState::default()));
        let (ended, ended_receiver) = watch::channel(false);
        let client = Client {
            ended,
            policy: Arc::new(policy),
            state: state.clone(),
            log,
            forwarded_agent: settings
                .forward_agent
                .then(|| settings.identity_agent.clone())
                .flatten(),
        };
        let alive_interval = settings
            .server_alive_interval
            .unwrap_or(DEFAULT_ALIVE_INTERVAL);
        let alive_max = settings.server_alive_count_max;
        // A write stuck as long as unanswered keepalives would take means
        // the peer is gone (see watchdog.rs).
        let stream: Box<dyn Stream> = match alive_max {
            0 => stream,
            n => Box::new(WriteWatchdog::new(
                stream,
                alive_interval.saturating_mul(n.saturating_add(1)),
            )),
        };
        let handshake = async move {
            log.debug1(&format!("Local version string {}", greeting::CLIENT_ID));
            // The window: enough for one round trip at high speed, and no
            // more (see greeting.rs).
            let (stream, round_trip, how): (Box<dyn Stream>, _, _) = match kernel_round_trip {
                Some(rtt) if rtt >= greeting::FAR => (stream, Some(rtt), "TCP"),
                _ => {
                    let (stream, greeting) = greeting::exchange(stream).await;
                    if let Some(version) = &greeting.server_version {
                        log.debug1(&format!("Remote version string {version}"));
                    }
                    (Box::new(stream), greeting.round_trip, "version exchange")
                }
            };
            let window_size = greeting::window_size(round_trip);
            let measured = match round_trip {
                Some(rtt) => format!("round trip {:.1} ms ({how})", rtt.as_secs_f64() * 1000.0),
                None => "round trip unknown".to_owned(),
            };
            log.debug1(&format!(
                "{measured}; channel window {} KiB",
                window_size / 1024
            ));
            let russh_config = client::Config {
                client_id: russh::SshId::Standard(greeting::CLIENT_ID.into()),
                preferred,
                window_size,
                maximum_packet_size: MAX_PACKET_SIZE,
                // Messages queued per channel before russh stops reading
                // the socket: 10 packets keep up and hold 320 KiB, where
                // russh's 100 held 3 MiB of memory for nothing.
                channel_buffer_size: 10,
                keepalive_interval: Some(alive_interval),
                keepalive_max: alive_max as usize,
                nodelay: true,
                ..client::Config::default()
            };
            client::connect_stream(Arc::new(russh_config), stream, client)
                .await
                .map(|handle| (handle, round_trip))
        };
        let handshake = match settings.connect_timeout {
            Some(limit) => tokio::time::timeout(limit, handshake)
                .await
                .map_err(|_| "Connection timed out during banner exchange".to_owned())?,
            None => handshake.await,
        };
        let verdict = state.lock().ok().and_then(|s| s.verdict);
        let (mut handle, round_trip) = match handshake {
            Ok(made) => made,
            Err(_) if verdict == Some(Verdict::Refused) => {
                return Err("Host key verification failed.".into());
            }
            Err(e) => {
                return Err(format!(
                    "Connection to {} port {}: {e}",
                    settings.hostname, settings.port
                ));
            }
        };
        let key_only = verdict == Some(Verdict::KeyAuthenticationOnly);
        auth::authenticate(&mut handle, settings, key_only, &log).await?;
        Ok(Connection {
            handle,
            ended: ended_receiver,
            round_trip,
        })
    })
}

/// Opens the byte stream the SSH session runs over. Also returns the
/// address to show in the host key question, and the kernel's round trip
/// for a direct TCP connection.
async fn open_stream(
    settings: &Settings,
    context: &Context,
    log: Log,
) -> Result<(Box<dyn Stream>, String, Option<Duration>), String> {
    if let Some(jumps) = &settings.proxy_jump {
        let (stream, address) = through_jump_hosts(jumps, settings, context, log).await?;
        return Ok((stream, address, None));
    }
    if let Some(command) = &settings.proxy_command {
        log.debug1(&format!("Executing proxy command: exec {command}"));
        let stream = super::proxy::ProxyCommand::spawn(command)?;
        return Ok((
            Box::new(stream),
            "<no hostip for proxy command>".into(),
            None,
        ));
    }
    let stream = tcp(settings, log).await?;
    let round_trip = greeting::kernel_round_trip(&stream);
    let peer = stream
        .peer_addr()
        .map(|a| known_hosts::lookup_name(&a.ip().to_string(), a.port(), None))
        .unwrap_or_default();
    Ok((Box::new(stream), peer, round_trip))
}

/// `-J a,b`: connect to `a`, from there to `b`, from there to the
/// destination. Each hop reads its own settings (from the same files).
async fn through_jump_hosts(
    jumps: &str,
    settings: &Settings,
    context: &Context,
    log: Log,
) -> Result<(Box<dyn Stream>, String), String> {
    let hops: Vec<&str> = jumps.split(',').collect();
    let (last, earlier) = hops.split_last().ok_or("empty ProxyJump")?;
    let (user, host, port) = config::parse_jump(last)?;
    let mut request = context.template.clone();
    request.host = host;
    request.user = user;
    request.port = port;
    request.command_line = context
        .template
        .command_line
        .iter()
        .filter(|line| line.to_ascii_lowercase().starts_with("loglevel"))
        .cloned()
        .collect();
    request.command_line.push(if earlier.is_empty() {
        "ProxyJump none".into()
    } else {
        format!("ProxyJump {}", earlier.join(","))
    });
    let jump_settings = config::resolve(&request).map_err(|e| e.to_string())?;
    log.debug1(&format!(
        "Setting implicit ProxyCommand from ProxyJump: {}",
        jumps
    ));
    let jump = connect(&jump_settings, context, log).await?.handle;
    let channel = jump
        .channel_open_direct_tcpip(
            settings.hostname.clone(),
            u32::from(settings.port),
            "127.0.0.1",
            0,
        )
        .await
        .map_err(|e| {
            format!(
                "channel to {}:{} through {}: {e}",
                settings.hostname, settings.port, jump_settings.hostname
            )
        })?;
    let stream = super::proxy::JumpStream::new(channel.into_stream(), jump);
    Ok((Box::new(stream), "<no hostip for proxy command>".into()))
}

/// A direct TCP connection, trying each address of the host (of the family
/// asked for) and repeating ConnectionAttempts times.
async fn tcp(settings: &Settings, log: Log) -> Result<TcpStream, String> {
    let host = settings.hostname.as_str();
    let port = settings.port;
    let mut last_error = String::new();
    for attempt in 0..settings.connection_attempts.max(1) {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let addresses: Vec<SocketAddr> = match tokio::net::lookup_host((host, port)).await {
            Ok(found) => found
                .filter(|a| match settings.address_family {
                    AddressFamily::Any => true,
                    AddressFamily::Inet => a.is_ipv4(),
                    AddressFamily::Inet6 => a.is_ipv6(),
                })
                .collect(),
            Err(e) => {
                last_error = format!("Could not resolve hostname {host}: {}", resolve_reason(&e));
                continue;
            }
        };
        if addresses.is_empty() {
            last_error = format!(
                "Could not resolve hostname {host}: Address family for hostname not supported"
            );
            continue;
        }
        for address in addresses {
            log.debug1(&format!(
                "Connecting to {host} [{}] port {port}.",
                address.ip()
            ));
            match connect_one(address, settings).await {
                Ok(stream) => {
                    log.debug1("Connection established.");
                    return Ok(stream);
                }
                Err(why) => {
                    last_error = format!("connect to host {host} port {port}: {why}");
                    log.debug1(&last_error);
                }
            }
        }
    }
    Err(last_error)
}

async fn connect_one(address: SocketAddr, settings: &Settings) -> Result<TcpStream, String> {
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| crate::escape::io_reason(&e))?;
    if let Some(bind) = &settings.bind_address {
        let ip: std::net::IpAddr = bind
            .parse()
            .map_err(|_| format!("bad BindAddress {bind}"))?;
        socket
            .bind(SocketAddr::new(ip, 0))
            .map_err(|e| format!("bind {bind}: {}", crate::escape::io_reason(&e)))?;
    }
    let connecting = socket.connect(address);
    let stream = match settings.connect_timeout {
        Some(limit) => tokio::time::timeout(limit, connecting)
            .await
            .map_err(|_| "Connection timed out".to_owned())?,
        None => connecting.await,
    }
    .map_err(|e| crate::escape::io_reason(&e))?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// getaddrinfo's words, without Rust's prefix.
fn resolve_reason(error: &std::io::Error) -> String {
    let text = error.to_string();
    text.strip_prefix("failed to lookup address information: ")
        .unwrap_or(&text)
        .to_owned()
}
