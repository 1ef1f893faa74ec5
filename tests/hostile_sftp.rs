//! Hostile SFTP servers, scripted over `tokio::io::duplex`: names that are
//! not names, more data than asked, replies to requests never sent, counts
//! and lengths past their packets, a server that drops or loops. Each is
//! refused, nothing lands outside the target, and nothing hangs.

mod common;

use std::fs;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use rscp::engine::{SessionError, Summary};
use rscp::events::Events;
use rscp::sftp::{Sftp, SftpOptions};

#[derive(Default)]
struct Captured {
    errors: Mutex<Vec<String>>,
}

impl Events for Captured {
    fn error(&self, message: &str) {
        self.errors.lock().unwrap().push(message.to_owned());
    }
    fn peer_message(&self, _message: &[u8]) {}
}

const DIR: u32 = 0o040755;
const FILE: u32 = 0o100644;
const LINK: u32 = 0o120777;

fn u32be(n: u32) -> [u8; 4] {
    n.to_be_bytes()
}

fn string(bytes: &[u8]) -> Vec<u8> {
    [&u32be(bytes.len() as u32)[..], bytes].concat()
}

fn packet(kind: u8, id: u32, body: &[u8]) -> Vec<u8> {
    let mut p = u32be(1 + 4 + body.len() as u32).to_vec();
    p.push(kind);
    p.extend_from_slice(&u32be(id));
    p.extend_from_slice(body);
    p
}

fn attrs(mode: u32, size: u64) -> Vec<u8> {
    let mut a = u32be(0x1 | 0x4).to_vec();
    a.extend_from_slice(&size.to_be_bytes());
    a.extend_from_slice(&u32be(mode));
    a
}

fn status(id: u32, code: u32) -> Vec<u8> {
    packet(
        101,
        id,
        &[&u32be(code)[..], &string(b"why"), &string(b"")].concat(),
    )
}

fn handle(id: u32, h: &[u8]) -> Vec<u8> {
    packet(102, id, &string(h))
}

fn data(id: u32, bytes: &[u8]) -> Vec<u8> {
    packet(103, id, &string(bytes))
}

fn names(id: u32, entries: &[(&[u8], Vec<u8>)]) -> Vec<u8> {
    let mut body = u32be(entries.len() as u32).to_vec();
    for (name, attrs) in entries {
        body.extend(string(name));
        body.extend(string(name));
        body.extend_from_slice(attrs);
    }
    packet(104, id, &body)
}

fn attrs_reply(id: u32, mode: u32, size: u64) -> Vec<u8> {
    packet(105, id, &attrs(mode, size))
}

/// One request as the server sees it.
struct Asked {
    kind: u8,
    id: u32,
    /// The first string of the body (a path or a handle).
    first: Vec<u8>,
    /// A WRITE's data.
    data: Vec<u8>,
    /// A READ's or WRITE's offset.
    offset: u64,
}

/// Serves `stream` with `answer` until the client goes: each request gets
/// the packets `answer` returns (possibly none, possibly hostile).
async fn serve(stream: DuplexStream, answer: impl FnMut(&Asked) -> Vec<Vec<u8>>) {
    serve_offering(stream, &[], answer).await
}

/// [`serve`], with `extensions` (name, data) in the version reply.
async fn serve_offering(
    mut stream: DuplexStream,
    extensions: &'static [(&'static [u8], &'static [u8])],
    mut answer: impl FnMut(&Asked) -> Vec<Vec<u8>>,
) {
    let mut len = [0u8; 4];
    if stream.read_exact(&mut len).await.is_err() {
        return;
    }
    let mut init = vec![0u8; u32::from_be_bytes(len) as usize];
    if stream.read_exact(&mut init).await.is_err() {
        return;
    }
    let mut version = vec![2];
    version.extend_from_slice(&u32be(3));
    for (name, data) in extensions {
        version.extend(string(name));
        version.extend(string(data));
    }
    let version = [&u32be(version.len() as u32)[..], &version].concat();
    if stream.write_all(&version).await.is_err() {
        return;
    }
    loop {
        if stream.read_exact(&mut len).await.is_err() {
            return;
        }
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        if stream.read_exact(&mut body).await.is_err() {
            return;
        }
        let id = u32::from_be_bytes([body[1], body[2], body[3], body[4]]);
        let first = if body.len() >= 9 {
            let n = u32::from_be_bytes([body[5], body[6], body[7], body[8]]) as usize;
            body.get(9..9 + n).unwrap_or_default().to_vec()
        } else {
            Vec::new()
        };
        // WRITE: handle, offset (8 bytes), then the data as a string.
        let data = if body[0] == 6 {
            let at = 9 + first.len() + 8;
            body.get(at + 4..).unwrap_or_default().to_vec()
        } else {
            Vec::new()
        };
        let offset = match body[0] {
            5 | 6 => {
                let at = 9 + first.len();
                body.get(at..at + 8)
                    .map_or(0, |b| u64::from_be_bytes(b.try_into().unwrap()))
            }
            _ => 0,
        };
        let asked = Asked {
            kind: body[0],
            id,
            first,
            data,
            offset,
        };
        for reply in answer(&asked) {
            if stream.write_all(&reply).await.is_err() {
                return;
            }
        }
    }
}

fn options() -> SftpOptions {
    SftpOptions {
        recursive: true,
        preserve: false,
        limit: None,
        buffer: None,
        requests: 8,
        umask: 0o022,
    }
}

/// Runs a download of `request` into `target` against `answer`.
fn download(
    request: &[u8],
    target: &Path,
    answer: impl FnMut(&Asked) -> Vec<Vec<u8>> + Send + 'static,
) -> (Result<Summary, SessionError>, Vec<String>) {
    download_offering(request, target, &[], answer)
}

/// [`download`] from a server offering `extensions`.
fn download_offering(
    request: &[u8],
    target: &Path,
    extensions: &'static [(&'static [u8], &'static [u8])],
    answer: impl FnMut(&Asked) -> Vec<Vec<u8>> + Send + 'static,
) -> (Result<Summary, SessionError>, Vec<String>) {
    let events = Captured::default();
    let outcome = common::runtime().block_on(async {
        let (client, server) = tokio::io::duplex(1 << 20);
        let serving = tokio::spawn(serve_offering(server, extensions, answer));
        let (reader, writer) = tokio::io::split(client);
        let run = async {
            let mut sftp = Sftp::start(reader, writer, options(), &events).await?;
            sftp.download(request, target).await?;
            sftp.close().await
        };
        let outcome = tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("the client hung");
        serving.abort();
        outcome
    });
    let errors = events.errors.lock().unwrap().clone();
    (outcome, errors)
}

/// A small remote tree: `/src` holds what `entries` lists; every file is
/// "hello".
fn tree_server(entries: Vec<(&'static [u8], Vec<u8>)>) -> impl FnMut(&Asked) -> Vec<Vec<u8>> {
    let mut listed = false;
    move |asked| match asked.kind {
        17 | 7 if asked.first == b"/src" => vec![attrs_reply(asked.id, DIR, 0)],
        17 | 7 => vec![attrs_reply(asked.id, FILE, 5)],
        16 => vec![names(asked.id, &[(&asked.first, attrs(DIR, 0))])],
        11 => vec![handle(asked.id, b"\x00\x00\x00\x80")],
        12 if !listed => {
            listed = true;
            vec![names(asked.id, &entries)]
        }
        12 => vec![status(asked.id, 1)],
        3 => vec![handle(asked.id, b"\xff\x00")],
        5 if asked.first == b"\xff\x00" => {
            // Offset 0 gets the data, later reads the end of the file.
            vec![data(asked.id, b"hello")]
        }
        4 => vec![status(asked.id, 0)],
        _ => vec![status(asked.id, 8)],
    }
}

fn entries_of(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn names_that_are_not_names_are_refused_and_nothing_escapes() {
    let sandbox = tempfile::tempdir().unwrap();
    let target = sandbox.path().join("target");
    fs::create_dir(&target).unwrap();
    let entries: Vec<(&'static [u8], Vec<u8>)> = vec![
        (b"../escaped", attrs(FILE, 5)),
        (b"a/b", attrs(FILE, 5)),
        (b"", attrs(FILE, 5)),
        (b"nul\0name", attrs(FILE, 5)),
        (b".", attrs(DIR, 0)),
        (b"..", attrs(DIR, 0)),
        (b"good", attrs(FILE, 5)),
    ];
    // Every read past the first gets EOF.
    let mut server = tree_server(entries);
    let mut first_read = true;
    let answer = move |asked: &Asked| {
        if asked.kind == 5 {
            let first = std::mem::replace(&mut first_read, false);
            return if first {
                vec![data(asked.id, b"hello")]
            } else {
                vec![status(asked.id, 1)]
            };
        }
        server(asked)
    };
    let (outcome, errors) = download(b"/src", &target, answer);
    assert_eq!(outcome.unwrap().errors, 4, "{errors:?}");
    assert_eq!(errors.len(), 4);
    assert!(
        errors
            .iter()
            .all(|e| e.contains("server sent a name that is not one"))
    );
    assert_eq!(entries_of(&target), ["src"]);
    assert_eq!(entries_of(&target.join("src")), ["good"]);
    assert_eq!(fs::read(target.join("src/good")).unwrap(), b"hello");
    assert_eq!(entries_of(sandbox.path()), ["target"]);
}

/// A download of one file whose reads `read` answers.
fn file_download(
    read: impl FnMut(&Asked) -> Vec<Vec<u8>> + Send + 'static,
) -> (
    Result<Summary, SessionError>,
    Vec<String>,
    tempfile::TempDir,
) {
    let sandbox = tempfile::tempdir().unwrap();
    let mut read = read;
    let answer = move |asked: &Asked| match asked.kind {
        17 | 7 => vec![attrs_reply(asked.id, FILE, 5)],
        3 => vec![handle(asked.id, b"h")],
        5 => read(asked),
        4 => vec![status(asked.id, 0)],
        _ => vec![status(asked.id, 8)],
    };
    let (outcome, errors) = download(b"/f", &sandbox.path().join("got"), answer);
    (outcome, errors, sandbox)
}

#[test]
fn more_data_than_asked_is_a_protocol_error() {
    let (outcome, _, _sandbox) = file_download(|asked| vec![data(asked.id, &vec![7u8; 300_000])]);
    assert_eq!(
        outcome,
        Err(SessionError::Protocol(
            "received message too long 300009".into()
        ))
    );
    let (outcome, _, _sandbox) = file_download(|asked| {
        // Just under the message limit, but over the read asked for.
        let too_much = vec![7u8; 261_121];
        vec![data(asked.id, &too_much)]
    });
    assert_eq!(
        outcome,
        Err(SessionError::Protocol(
            "server sent more data than asked".into()
        ))
    );
}

#[test]
fn a_reply_to_a_request_never_sent_is_a_protocol_error() {
    let (outcome, _, _sandbox) = file_download(|asked| vec![data(asked.id + 1000, b"x")]);
    let Err(SessionError::Protocol(why)) = outcome else {
        panic!("{outcome:?}");
    };
    assert!(why.contains("which was never sent"), "{why}");
}

#[test]
fn counts_and_lengths_past_their_packet_are_refused_without_allocating() {
    let sandbox = tempfile::tempdir().unwrap();
    let target = sandbox.path().join("t");
    fs::create_dir(&target).unwrap();
    let answer = |asked: &Asked| match asked.kind {
        17 | 7 => vec![attrs_reply(asked.id, DIR, 0)],
        16 => vec![names(asked.id, &[(b"/src", attrs(DIR, 0))])],
        11 => vec![handle(asked.id, b"d")],
        // Four billion names promised in a 20-byte packet.
        12 => vec![packet(
            104,
            asked.id,
            &[&u32be(u32::MAX)[..], &string(b"a")].concat(),
        )],
        _ => vec![status(asked.id, 0)],
    };
    let (outcome, _) = download(b"/src", &target, answer);
    assert_eq!(
        outcome,
        Err(SessionError::Protocol(
            "message shorter than its fields".into()
        ))
    );
    // A length field that would be 2 GiB.
    let (outcome, _, _sandbox) =
        file_download(|_| vec![u32be(0x7fff_ffff).to_vec(), vec![103; 64]]);
    assert_eq!(
        outcome,
        Err(SessionError::Protocol(
            "received message too long 2147483647".into()
        ))
    );
}

#[test]
fn data_past_the_end_of_the_file_is_refused() {
    let mut eof_sent = false;
    let (outcome, _, _sandbox) = file_download(move |asked| {
        if !eof_sent {
            eof_sent = true;
            return vec![status(asked.id, 1)];
        }
        vec![data(asked.id, b"late")]
    });
    let Err(SessionError::Protocol(why)) = outcome else {
        panic!("{outcome:?}");
    };
    assert!(why.contains("past the end") || why.contains("gap"), "{why}");
}

#[test]
fn a_server_that_drops_the_connection_is_a_lost_connection() {
    let (outcome, _, sandbox) = file_download(|_| vec![vec![0, 0, 0]]);
    // Three bytes of a length, then the stream ends with the server.
    drop(sandbox);
    assert!(
        matches!(
            outcome,
            Err(SessionError::LostConnection) | Err(SessionError::Protocol(_))
        ),
        "{outcome:?}"
    );
}

#[test]
fn a_symlink_loop_on_the_server_is_reported_not_followed() {
    let sandbox = tempfile::tempdir().unwrap();
    let target = sandbox.path().join("t");
    fs::create_dir(&target).unwrap();
    let answer = |asked: &Asked| match asked.kind {
        // Everything is a directory; realpath says `loop` is `/src`.
        17 | 7 => vec![attrs_reply(asked.id, DIR, 0)],
        16 => vec![names(asked.id, &[(b"/src", attrs(DIR, 0))])],
        11 => vec![handle(asked.id, b"d")],
        12 => vec![names(asked.id, &[(b"loop", attrs(LINK, 0))])],
        _ => vec![status(asked.id, 0)],
    };
    // READDIR never ends with EOF here, so the listing is bounded by
    // rscp's limit, not by the server: give it one page then EOF.
    let mut pages = 0;
    let answer = move |asked: &Asked| {
        if asked.kind == 12 {
            pages += 1;
            if pages % 2 == 0 {
                return vec![status(asked.id, 1)];
            }
        }
        answer(asked)
    };
    let (outcome, errors) = download(b"/src", &target, answer);
    assert_eq!(outcome.unwrap().errors, 1, "{errors:?}");
    assert_eq!(
        errors,
        ["/src/loop: directory loop (symbolic link to a parent)"]
    );
    assert_eq!(entries_of(&target.join("src")), Vec::<String>::new());
}

/// Replies rscp does not wait for (a file's last WRITEs, its size, its
/// CLOSE) are still checked: a server that fails every write of one file
/// gets one error naming that file, and the next file is unaffected.
#[test]
fn errors_in_replies_not_waited_for_name_their_file_once() {
    let sandbox = tempfile::tempdir().unwrap();
    let bad = sandbox.path().join("bad.bin");
    let good = sandbox.path().join("good.bin");
    fs::write(&bad, vec![1u8; 100_000]).unwrap();
    fs::write(&good, b"fine").unwrap();
    let events = Captured::default();
    let mut handles = 0u32;
    let answer = move |asked: &Asked| -> Vec<Vec<u8>> {
        match asked.kind {
            17 => vec![attrs_reply(asked.id, DIR, 0)],
            3 => {
                handles += 1;
                vec![handle(asked.id, &handles.to_be_bytes())]
            }
            // Writes to the first file fail, as on a full disk.
            6 if asked.first == 1u32.to_be_bytes() => {
                vec![packet(
                    101,
                    asked.id,
                    &[&u32be(4)[..], &string(b"disk full"), &string(b"")].concat(),
                )]
            }
            _ => vec![status(asked.id, 0)],
        }
    };
    let outcome = common::runtime().block_on(async {
        let (client, server) = tokio::io::duplex(1 << 20);
        let serving = tokio::spawn(serve(server, answer));
        let (reader, writer) = tokio::io::split(client);
        let mut small = options();
        small.buffer = Some(1024);
        let run = async {
            let mut sftp = Sftp::start(reader, writer, small, &events).await?;
            let target = sftp.upload_target(b"/remote", false).await?.unwrap();
            sftp.upload(&bad, &target).await?;
            sftp.upload(&good, &target).await?;
            sftp.close().await
        };
        let outcome = tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("the client hung");
        serving.abort();
        outcome
    });
    assert_eq!(outcome.unwrap().errors, 1);
    assert_eq!(
        events.errors.lock().unwrap().clone(),
        ["/remote/bad.bin: disk full"]
    );
}

/// READDIR pages with no names end the listing (a server answering so
/// forever would otherwise keep rscp asking).
#[test]
fn empty_directory_pages_end_the_listing() {
    let sandbox = tempfile::tempdir().unwrap();
    let target = sandbox.path().join("t");
    fs::create_dir(&target).unwrap();
    let answer = |asked: &Asked| match asked.kind {
        17 | 7 => vec![attrs_reply(asked.id, DIR, 0)],
        16 => vec![names(asked.id, &[(b"/src", attrs(DIR, 0))])],
        11 => vec![handle(asked.id, b"d")],
        12 => vec![names(asked.id, &[])],
        _ => vec![status(asked.id, 0)],
    };
    let (outcome, errors) = download(b"/src", &target, answer);
    assert_eq!(outcome.unwrap().errors, 0, "{errors:?}");
    assert_eq!(entries_of(&target), ["src"]);
}

/// A server that answers every read with one byte still gives the right
/// file (the rest of each read asked for again, data held out of order
/// bounded).
#[test]
fn data_in_one_byte_pieces_arrives_whole() {
    let content: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    let served = content.clone();
    // The reads' offsets matter here, which `Asked` does not carry: a
    // server of its own.
    let sandbox = tempfile::tempdir().unwrap();
    let target = sandbox.path().join("got");
    let events = Captured::default();
    let outcome = common::runtime().block_on(async {
        let (client, mut server) = tokio::io::duplex(1 << 20);
        let serving = tokio::spawn(async move {
            let mut len = [0u8; 4];
            server.read_exact(&mut len).await.unwrap();
            let mut init = vec![0u8; u32::from_be_bytes(len) as usize];
            server.read_exact(&mut init).await.unwrap();
            server
                .write_all(&[&u32be(5)[..], &[2], &u32be(3)].concat())
                .await
                .unwrap();
            loop {
                if server.read_exact(&mut len).await.is_err() {
                    return;
                }
                let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
                server.read_exact(&mut body).await.unwrap();
                let id = u32::from_be_bytes([body[1], body[2], body[3], body[4]]);
                let reply = match body[0] {
                    17 | 7 => attrs_reply(id, FILE, served.len() as u64),
                    3 => handle(id, b"h"),
                    5 => {
                        // handle "h": 4 + 1 bytes, then the offset.
                        let at = 5 + 4 + 1;
                        let offset = u64::from_be_bytes(body[at..at + 8].try_into().unwrap());
                        match served.get(offset as usize) {
                            Some(&b) => data(id, &[b]),
                            None => status(id, 1),
                        }
                    }
                    _ => status(id, 0),
                };
                server.write_all(&reply).await.unwrap();
            }
        });
        let (reader, writer) = tokio::io::split(client);
        let run = async {
            let mut sftp = Sftp::start(reader, writer, options(), &events).await?;
            sftp.download(b"/f", &target).await?;
            sftp.close().await
        };
        let outcome = tokio::time::timeout(Duration::from_secs(20), run)
            .await
            .expect("the client hung");
        serving.abort();
        outcome
    });
    assert_eq!(outcome.unwrap().errors, 0);
    assert!(fs::read(&target).unwrap() == content);
}

/// `~user` needs OpenSSH's expand-path extension; a server without it gets
/// scp's message and nothing is asked for.
#[test]
fn tilde_user_without_expand_path_is_refused() {
    let sandbox = tempfile::tempdir().unwrap();
    let answer = |asked: &Asked| vec![status(asked.id, 8)];
    let (outcome, errors) = download(b"~bob/f", &sandbox.path().join("got"), answer);
    assert_eq!(outcome.unwrap().errors, 1);
    assert_eq!(errors, ["server expand-path extension is required"]);
    assert!(!sandbox.path().join("got").exists());
}

/// `-3` from a hostile SFTP origin into a remote `scp -t` (played here):
/// returns the outcome, what the origin's engine reported, and every byte
/// the scp sink was sent.
fn relay_to_scp(
    answer: impl FnMut(&Asked) -> Vec<Vec<u8>> + Send + 'static,
) -> (Result<Summary, SessionError>, Vec<String>, Vec<u8>) {
    use rscp::scp::{Source, SourceOptions};
    let events = Captured::default();
    let (outcome, sent) = common::runtime().block_on(async {
        let (client, server) = tokio::io::duplex(1 << 20);
        let serving = tokio::spawn(serve(server, answer));
        let (ours, theirs) = tokio::io::duplex(1 << 20);
        let sink = tokio::spawn(async move {
            let (mut read, mut write) = tokio::io::split(theirs);
            // The go-ahead, and a yes to everything.
            let _ = write.write_all(&[0; 16]).await;
            let mut sent = Vec::new();
            let _ = read.read_to_end(&mut sent).await;
            sent
        });
        let (reader, writer) = tokio::io::split(client);
        let (sink_reader, sink_writer) = tokio::io::split(ours);
        let run = async {
            let mut origin = Sftp::start(reader, writer, options(), &events).await?;
            let mut scp = Source::new(sink_reader, sink_writer, SourceOptions::default(), &events);
            scp.start().await?;
            origin.relay_into(&mut scp, b"/f").await?;
            let sent = origin.close().await?;
            let received = scp.close().await?;
            Ok(Summary {
                errors: sent.errors + received.errors,
            })
        };
        let outcome = tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("the relay hung");
        serving.abort();
        (outcome, sink.await.unwrap())
    });
    let errors = events.errors.lock().unwrap().clone();
    (outcome, errors, sent)
}

/// Replies to a file's READs: "hello", then its end.
fn hello_then_end() -> impl FnMut(u32) -> Vec<Vec<u8>> {
    let mut reads = 0;
    move |id| {
        reads += 1;
        if reads == 1 {
            vec![data(id, b"hello")]
        } else {
            vec![status(id, 1)]
        }
    }
}

/// A file the server says is 1 TiB that ends after 5 bytes: no terabyte
/// of zeros to the destination, a protocol error. A shortfall that could be
/// a file that shrank is padded, and the sink told the file is bad.
#[test]
fn a_relayed_file_shorter_than_its_stated_size_is_not_padded_without_end() {
    for (size, refused) in [(1u64 << 40, true), (4096, false)] {
        let mut read = hello_then_end();
        let (outcome, errors, sent) = relay_to_scp(move |asked| match asked.kind {
            17 | 7 => vec![attrs_reply(asked.id, FILE, size)],
            3 => vec![handle(asked.id, b"h")],
            5 => read(asked.id),
            4 => vec![status(asked.id, 0)],
            _ => vec![status(asked.id, 8)],
        });
        let header = format!("C0644 {size} f\nhello");
        assert!(sent.starts_with(header.as_bytes()), "{:?}", &sent[..20]);
        if refused {
            let text = outcome.unwrap_err().to_string();
            assert!(text.contains("short of its size"), "{text}");
            assert!(sent.len() < 100, "{} bytes sent", sent.len());
        } else {
            assert_eq!(outcome, Ok(Summary { errors: 1 }));
            assert_eq!(errors, ["/f: file shrank while being read"]);
            assert_eq!(
                sent.len(),
                header.len() + 4091 + "\x01rscp: file shrank while being read\n".len()
            );
        }
    }
}

/// A server that leaves the size out: asked with FSTAT; still unknown, the
/// file is refused by name rather than announced as empty.
#[test]
fn a_relayed_file_without_a_size_is_asked_for_it_or_refused() {
    let no_size = [&u32be(0x4)[..], &u32be(FILE)].concat();
    for fstat_knows in [true, false] {
        let no_size = no_size.clone();
        let mut read = hello_then_end();
        let (outcome, errors, sent) = relay_to_scp(move |asked| match asked.kind {
            17 | 7 => vec![packet(105, asked.id, &no_size)],
            8 if fstat_knows => vec![attrs_reply(asked.id, FILE, 5)],
            8 => vec![packet(105, asked.id, &no_size)],
            3 => vec![handle(asked.id, b"h")],
            5 => read(asked.id),
            4 => vec![status(asked.id, 0)],
            _ => vec![status(asked.id, 8)],
        });
        if fstat_knows {
            assert_eq!(outcome, Ok(Summary { errors: 0 }));
            assert_eq!(sent, b"C0644 5 f\nhello\0");
        } else {
            assert_eq!(outcome, Ok(Summary { errors: 1 }));
            assert_eq!(errors, ["/f: the server does not tell its size"]);
            assert_eq!(sent, b"");
        }
    }
}

/// An upload's OPENs go out together; a server that answers them in the
/// reverse order still gets each file's data on that file's own handle.
#[test]
fn opens_answered_out_of_order_keep_each_file_on_its_handle() {
    use std::sync::Arc;
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("up");
    fs::create_dir(&tree).unwrap();
    for name in ["a", "b", "c"] {
        fs::write(tree.join(name), format!("data of {name}")).unwrap();
    }
    type Writes = Arc<Mutex<Vec<(Vec<u8>, Vec<u8>)>>>;
    let writes: Writes = Arc::default();
    let seen = writes.clone();
    let mut waiting: Vec<(u32, Vec<u8>)> = Vec::new();
    let answer = move |asked: &Asked| match asked.kind {
        // The target: an existing directory; the tree's: made.
        17 | 7 if asked.first == b"/dst" => vec![attrs_reply(asked.id, DIR, 0)],
        17 | 7 => vec![status(asked.id, 2)],
        14 => vec![status(asked.id, 0)],
        3 => {
            waiting.push((asked.id, asked.first.clone()));
            if waiting.len() < 3 {
                return Vec::new();
            }
            waiting
                .drain(..)
                .rev()
                .map(|(id, path)| handle(id, &path))
                .collect()
        }
        6 => {
            seen.lock()
                .unwrap()
                .push((asked.first.clone(), asked.data.clone()));
            vec![status(asked.id, 0)]
        }
        _ => vec![status(asked.id, 0)],
    };
    let events = Captured::default();
    let outcome = common::runtime().block_on(async {
        let (client, server) = tokio::io::duplex(1 << 20);
        let serving = tokio::spawn(serve(server, answer));
        let (reader, writer) = tokio::io::split(client);
        let run = async {
            let mut sftp = Sftp::start(reader, writer, options(), &events).await?;
            let target = sftp.upload_target(b"/dst", false).await?.unwrap();
            sftp.upload(&tree, &target).await?;
            sftp.close().await
        };
        let outcome = tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("the upload hung");
        serving.abort();
        outcome
    });
    assert_eq!(outcome, Ok(Summary { errors: 0 }));
    let mut writes = writes.lock().unwrap().clone();
    writes.sort();
    let expected: Vec<(Vec<u8>, Vec<u8>)> = ["a", "b", "c"]
        .iter()
        .map(|n| {
            (
                format!("/dst/up/{n}").into_bytes(),
                format!("data of {n}").into_bytes(),
            )
        })
        .collect();
    assert_eq!(writes, expected);
}

/// A tree download sends its files' OPENs and small READs together; a
/// server that answers the OPENs in reverse order, and a local file that
/// cannot be written (its READs were asked already), still leave every
/// other file whole and nothing waiting.
#[test]
fn opens_and_reads_answered_out_of_order_land_in_their_own_files() {
    let sandbox = tempfile::tempdir().unwrap();
    let target = sandbox.path().join("got");
    // "b" cannot be written: a directory has its name.
    fs::create_dir_all(target.join("src/b")).unwrap();
    let mut waiting: Vec<(u32, Vec<u8>)> = Vec::new();
    let mut listed = false;
    let answer = move |asked: &Asked| match asked.kind {
        17 | 7 if asked.first == b"/src" => vec![attrs_reply(asked.id, DIR, 0)],
        17 | 7 => vec![attrs_reply(asked.id, FILE, 9)],
        16 => vec![names(asked.id, &[(&asked.first, attrs(DIR, 0))])],
        11 => vec![handle(asked.id, b"dir")],
        12 if !listed => {
            listed = true;
            let entries: Vec<(&[u8], Vec<u8>)> = vec![
                (b"a", attrs(FILE, 9)),
                (b"b", attrs(FILE, 9)),
                (b"c", attrs(FILE, 9)),
            ];
            vec![names(asked.id, &entries)]
        }
        12 => vec![status(asked.id, 1)],
        3 => {
            waiting.push((asked.id, asked.first.clone()));
            if waiting.len() < 3 {
                return Vec::new();
            }
            waiting
                .drain(..)
                .rev()
                .map(|(id, path)| handle(id, &path))
                .collect()
        }
        5 if asked.offset == 0 => {
            let name = asked.first.rsplit(|&b| b == b'/').next().unwrap().to_vec();
            vec![data(asked.id, &[b"data of ", &name[..]].concat())]
        }
        5 => vec![status(asked.id, 1)],
        _ => vec![status(asked.id, 0)],
    };
    let (outcome, errors) = download(b"/src", &target, answer);
    assert_eq!(outcome, Ok(Summary { errors: 1 }), "{errors:?}");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("src/b"), "{errors:?}");
    assert_eq!(fs::read(target.join("src/a")).unwrap(), b"data of a");
    assert_eq!(fs::read(target.join("src/c")).unwrap(), b"data of c");
    assert!(target.join("src/b").is_dir());
}

/// A download of a directory of 300 files opens as many at once as the
/// server can hold: half the handles its limits@openssh.com reply says
/// (at most 256), 64 when it does not say. Every file still arrives.
#[test]
fn a_download_opens_as_many_files_at_once_as_the_server_can_hold() {
    for (handles, expected) in [
        (Some(20u64), 10usize),
        (Some(0), 64),
        (Some(1019), 256),
        (None, 64),
    ] {
        let files: Vec<Vec<u8>> = (0..300).map(|i| format!("f{i}").into_bytes()).collect();
        let open = std::sync::Arc::new(Mutex::new((0usize, 0usize)));
        let seen = open.clone();
        let mut listed = false;
        let answer = move |asked: &Asked| match asked.kind {
            200 => {
                let mut limits = Vec::new();
                for n in [262_144u64, 32_768, 32_768, handles.unwrap_or(0)] {
                    limits.extend_from_slice(&n.to_be_bytes());
                }
                vec![packet(201, asked.id, &limits)]
            }
            17 | 7 if asked.first == b"/src" => vec![attrs_reply(asked.id, DIR, 0)],
            17 | 7 => vec![attrs_reply(asked.id, FILE, 5)],
            16 => vec![names(asked.id, &[(&asked.first, attrs(DIR, 0))])],
            11 => vec![handle(asked.id, b"dir")],
            12 if !listed => {
                listed = true;
                let entries: Vec<(&[u8], Vec<u8>)> =
                    files.iter().map(|n| (&n[..], attrs(FILE, 5))).collect();
                vec![names(asked.id, &entries)]
            }
            12 => vec![status(asked.id, 1)],
            3 => {
                let mut open = seen.lock().unwrap();
                open.0 += 1;
                open.1 = open.1.max(open.0);
                let n = asked
                    .first
                    .rsplit(|&b| b == b'/')
                    .next()
                    .unwrap_or_default();
                vec![handle(asked.id, n)]
            }
            5 if asked.offset == 0 => vec![data(asked.id, b"hello")],
            5 => vec![status(asked.id, 1)],
            4 => {
                if asked.first != b"dir" {
                    seen.lock().unwrap().0 -= 1;
                }
                vec![status(asked.id, 0)]
            }
            _ => vec![status(asked.id, 8)],
        };
        let work = tempfile::tempdir().unwrap();
        let target = work.path().join("got");
        let limits: &'static [(&[u8], &[u8])] = &[(b"limits@openssh.com", b"1")];
        let offered = if handles.is_some() { limits } else { &[] };
        let (outcome, errors) = download_offering(b"/src", &target, offered, answer);
        assert_eq!(outcome, Ok(Summary::default()), "{handles:?}");
        assert!(errors.is_empty(), "{errors:?}");
        let (still_open, most) = *open.lock().unwrap();
        assert_eq!((still_open, most), (0, expected), "{handles:?}");
        assert_eq!(entries_of(&target).len(), 300);
        for i in [0, 150, 299] {
            assert_eq!(fs::read(target.join(format!("f{i}"))).unwrap(), b"hello");
        }
    }
}

/// Handles longer than the protocol's 256 bytes are refused: a server
/// claiming many handles cannot make rscp hold 256 KiB for each file.
#[test]
fn a_handle_longer_than_256_bytes_is_a_protocol_error() {
    let work = tempfile::tempdir().unwrap();
    let mut inner = tree_server(vec![(b"a", attrs(FILE, 5))]);
    let long = vec![7u8; 300];
    let (outcome, _) = download(b"/src", &work.path().join("got"), move |asked| {
        if asked.kind == 3 {
            vec![handle(asked.id, &long)]
        } else {
            inner(asked)
        }
    });
    assert_eq!(
        outcome,
        Err(SessionError::Protocol(
            "handle longer than 256 bytes".into()
        ))
    );
    assert!(!work.path().join("got/a").exists());
}
