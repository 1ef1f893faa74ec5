//! Server implementations other than OpenSSH's sshd: Dropbear, and a small
//! russh server offering keyboard-interactive authentication (which sshd
//! cannot offer here without PAM). Both run OpenSSH's real `scp -t/-f`.

mod common;

use std::borrow::Cow;
use std::fs;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

/// A throwaway Dropbear server on 127.0.0.1.
struct Dropbear {
    port: u16,
    /// `ssh-ed25519 AAAA...`
    host_key: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Dropbear {
    fn start() -> Option<Dropbear> {
        if !which("dropbear") {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true but dropbear is not installed");
            }
            skip("dropbear not installed");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("host_key");
        let out = Command::new("dropbearkey")
            .args(["-t", "ed25519", "-f"])
            .arg(&key)
            .output()
            .unwrap();
        assert!(out.status.success());
        let host_key = String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.starts_with("ssh-ed25519 "))
            .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
            .expect("dropbear public key");
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new("dropbear")
            .args(["-F", "-E", "-s", "-m", "-p"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-r")
            .arg(&key)
            .arg("-P")
            .arg(dir.path().join("pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Ready when a Dropbear answers on the port and ours is still alive
        // (if another server took the port first, ours exits).
        let deadline = Instant::now() + Duration::from_secs(10);
        while !dropbear_answers(port) {
            assert!(
                matches!(child.try_wait(), Ok(None)),
                "dropbear exited at start"
            );
            assert!(Instant::now() < deadline, "dropbear did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Dropbear {
            port,
            host_key,
            child,
            _dir: dir,
        })
    }
}

/// Whether the server on `port` greets as Dropbear.
fn dropbear_answers(port: u16) -> bool {
    use std::io::Read;
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut greeting = [0u8; 16];
    stream.read_exact(&mut greeting).is_ok() && greeting.starts_with(b"SSH-2.0-dropbear")
}

impl Drop for Dropbear {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A home whose `.ssh` reaches a server as `server`.
fn home_for(port: u16, host_key: &str, extra: &str, key: Option<&Path>) -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let ssh = home.path().join(".ssh");
    fs::create_dir(&ssh).unwrap();
    chmod(&ssh, 0o700);
    fs::write(
        ssh.join("known_hosts"),
        format!("[127.0.0.1]:{port} {host_key}\n"),
    )
    .unwrap();
    let identity = key
        .map(|k| format!("\tIdentityFile {}\n", k.display()))
        .unwrap_or_default();
    fs::write(
        ssh.join("config"),
        format!(
            "{extra}Host server\n\tHostName 127.0.0.1\n\tPort {port}\n{identity}\tStrictHostKeyChecking yes\n\tHashKnownHosts no\n"
        ),
    )
    .unwrap();
    chmod(ssh.join("config"), 0o600);
    home
}

fn rscp_at(home: &Path) -> Command {
    let mut command = rscp();
    command
        .env("HOME", home)
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("DISPLAY");
    command
}

#[test]
fn dropbear_trees_both_ways() {
    let Some(dropbear) = Dropbear::start() else {
        return;
    };
    let Some(user) = TestUser::create() else {
        return;
    };
    let keys = tempfile::tempdir().unwrap();
    let key = new_key(keys.path(), "id", "");
    user.authorize(&key.with_extension("pub"));
    let home = home_for(
        dropbear.port,
        &dropbear.host_key,
        &format!("Host server\n\tUser {}\n\tBatchMode yes\n", user.name),
        Some(&key),
    );
    let work = tempfile::tempdir().unwrap();
    chmod(work.path(), 0o755);
    let tree = work.path().join("tree");
    sample_tree(&tree);
    for (i, rel) in listing(&tree).iter().rev().enumerate() {
        set_times(
            tree.join(rel),
            1_400_000_000 + i as i64,
            1_400_000_500 + i as i64,
        );
    }

    let up = run(rscp_at(home.path())
        .arg("-rp")
        .arg(&tree)
        .arg(format!("server:{}", user.home.display())));
    assert_success(&up);
    assert_eq!(stderr(&up), "");
    let uploaded = user.home.join("tree");
    assert_same_tree(&tree, &uploaded);
    assert_same_metadata(&tree, &uploaded, true);

    let down = run(rscp_at(home.path())
        .arg("-rp")
        .arg(format!("server:{}", uploaded.display()))
        .arg(work.path().join("back")));
    assert_success(&down);
    assert_same_tree(&tree, &work.path().join("back"));
    assert_same_metadata(&tree, &work.path().join("back"), true);

    // A missing file: the remote scp's message, exit status 1.
    let down = run(rscp_at(home.path())
        .arg(format!("server:{}/missing", user.home.display()))
        .arg(work.path()));
    assert_exit(&down, 1);
    assert_eq!(
        stderr(&down),
        format!(
            "scp: {}/missing: No such file or directory\n",
            user.home.display()
        )
    );

    // SFTP mode: Dropbear runs OpenSSH's sftp-server for the subsystem.
    let sftp_up = run(rscp_at(home.path())
        .arg("-s")
        .arg("-rp")
        .arg(&tree)
        .arg(format!("server:{}/by-sftp", user.home.display())));
    assert_success(&sftp_up);
    assert_eq!(stderr(&sftp_up), "");
    assert_same_tree(&tree, &user.home.join("by-sftp"));
    assert_same_metadata(&tree, &user.home.join("by-sftp"), true);
    let sftp_down = run(rscp_at(home.path())
        .arg("-s")
        .arg("-rp")
        .arg(format!("server:{}/by-sftp", user.home.display()))
        .arg(work.path().join("back-sftp")));
    assert_success(&sftp_down);
    assert_same_tree(&tree, &work.path().join("back-sftp"));
    assert_same_metadata(&tree, &work.path().join("back-sftp"), true);
}

mod kbd {
    //! A russh server that asks one keyboard-interactive question and then
    //! runs each exec request with `sh -c`, as a real server would.

    use super::*;
    use russh::server::{Auth, Handler, Msg, Response, Session};
    use russh::{Channel, ChannelMsg, MethodKind, MethodSet};
    use tokio::io::AsyncWriteExt;

    pub const QUESTION: &str = "Verification code: ";

    /// What the server says: the request's name, instructions and prompt.
    #[derive(Clone)]
    pub struct Texts {
        pub name: &'static str,
        pub instructions: &'static str,
        pub question: &'static str,
    }

    pub const PLAIN: Texts = Texts {
        name: "",
        instructions: "",
        question: QUESTION,
    };

    pub struct Server {
        pub answer: String,
        pub texts: Texts,
        /// After the command: EOF only, never its exit status or a close.
        pub no_exit_status: bool,
    }

    impl Handler for Server {
        type Error = russh::Error;

        async fn auth_keyboard_interactive<'a>(
            &'a mut self,
            _user: &str,
            _submethods: &str,
            response: Option<Response<'a>>,
        ) -> Result<Auth, Self::Error> {
            match response {
                None => Ok(Auth::Partial {
                    name: Cow::Borrowed(self.texts.name),
                    instructions: Cow::Borrowed(self.texts.instructions),
                    prompts: Cow::Owned(vec![(Cow::Borrowed(self.texts.question), false)]),
                }),
                Some(answers) => {
                    let answers: Vec<Vec<u8>> = answers.map(|b| b.to_vec()).collect();
                    if answers == [self.answer.as_bytes().to_vec()] {
                        Ok(Auth::Accept)
                    } else {
                        Ok(Auth::Reject {
                            proceed_with_methods: Some(MethodSet::from(
                                &[MethodKind::KeyboardInteractive][..],
                            )),
                            partial_success: false,
                        })
                    }
                }
            }
        }

        async fn channel_open_session(
            &mut self,
            channel: Channel<Msg>,
            reply: russh::server::ChannelOpenHandle,
            _session: &mut Session,
        ) -> Result<(), Self::Error> {
            reply.accept().await;
            tokio::spawn(serve(channel, self.no_exit_status));
            Ok(())
        }
    }

    async fn serve(channel: Channel<Msg>, no_exit_status: bool) {
        let (mut read, write) = channel.split();
        let command = loop {
            match read.wait().await {
                Some(ChannelMsg::Exec { command, .. }) => break command,
                Some(_) => continue,
                None => return,
            }
        };
        let Ok(mut child) = tokio::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(String::from_utf8_lossy(&command).into_owned())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
        else {
            return;
        };
        let (Some(mut stdin), Some(mut stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return;
        };
        let mut to_client = write.make_writer();
        let output = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut stdout, &mut to_client).await;
            let _ = to_client.flush().await;
        });
        while let Some(message) = read.wait().await {
            match message {
                ChannelMsg::Data { data } if stdin.write_all(&data).await.is_err() => break,
                ChannelMsg::Eof => break,
                _ => {}
            }
        }
        drop(stdin);
        let _ = output.await;
        let code = child
            .wait()
            .await
            .ok()
            .and_then(|s| s.code())
            .unwrap_or(255);
        if no_exit_status {
            let _ = write.eof().await;
            // Keep the channel open, and say nothing more.
            while read.wait().await.is_some() {}
            return;
        }
        let _ = write.exit_status(code as u32).await;
        let _ = write.eof().await;
        let _ = write.close().await;
    }

    /// Starts the server on a runtime thread of its own; returns its port
    /// and host key.
    pub fn start(answer: &str, key: &Path, texts: Texts) -> (u16, String) {
        start_with(answer, key, texts, false)
    }

    pub fn start_with(
        answer: &str,
        key: &Path,
        texts: Texts,
        no_exit_status: bool,
    ) -> (u16, String) {
        let host_key = russh::keys::load_secret_key(key, None).unwrap();
        let public = host_key.public_key().to_openssh().unwrap();
        let config = Arc::new(russh::server::Config {
            keys: vec![host_key],
            methods: MethodSet::from(&[MethodKind::KeyboardInteractive][..]),
            auth_rejection_time: Duration::from_millis(10),
            ..Default::default()
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let answer = answer.to_owned();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                while let Ok((stream, _)) = listener.accept().await {
                    let handler = Server {
                        answer: answer.clone(),
                        texts: texts.clone(),
                        no_exit_status,
                    };
                    let config = config.clone();
                    tokio::spawn(async move {
                        if let Ok(session) =
                            russh::server::run_stream(config, stream, handler).await
                        {
                            let _ = session.await;
                        }
                    });
                }
            });
        });
        let public: String = public
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        (port, public)
    }
}

#[test]
fn keyboard_interactive_through_askpass() {
    let keys = tempfile::tempdir().unwrap();
    let host_key = new_key(keys.path(), "host", "");
    let (port, public) = kbd::start("4242", &host_key, kbd::PLAIN);
    let home = home_for(
        port,
        &public,
        "Host server\n\tBatchMode no\n\tPreferredAuthentications keyboard-interactive\n",
        None,
    );
    let work = tempfile::tempdir().unwrap();
    write(work.path().join("f"), &pattern(100_000, 9));
    let into = work.path().join("into");
    fs::create_dir(&into).unwrap();

    let answering = askpass(work.path(), "4242");
    let out = run(rscp_at(home.path())
        .arg(work.path().join("f"))
        .arg(format!("server:{}", into.display()))
        .env("SSH_ASKPASS", &answering)
        .env("SSH_ASKPASS_REQUIRE", "force"));
    assert_success(&out);
    assert!(fs::read(into.join("f")).unwrap() == fs::read(work.path().join("f")).unwrap());
    assert_eq!(
        fs::read_to_string(work.path().join("askpass.log")).unwrap(),
        format!("|(root@127.0.0.1) {}\n", kbd::QUESTION).replace("root", &whoami())
    );

    // A wrong answer, as many times as NumberOfPasswordPrompts, then no.
    let wrong = askpass(work.path(), "1111");
    fs::remove_file(work.path().join("askpass.log")).unwrap();
    let out = run(rscp_at(home.path())
        .arg("-oNumberOfPasswordPrompts=2")
        .arg(work.path().join("f"))
        .arg(format!("server:{}", into.display()))
        .env("SSH_ASKPASS", &wrong)
        .env("SSH_ASKPASS_REQUIRE", "force"));
    assert_exit(&out, 1);
    assert!(
        stderr(&out).ends_with("Permission denied (keyboard-interactive).\n"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        fs::read_to_string(work.path().join("askpass.log"))
            .unwrap()
            .lines()
            .count(),
        2
    );

    // BatchMode: not asked at all.
    let out = run(rscp_at(home.path())
        .arg("-B")
        .arg(work.path().join("f"))
        .arg(format!("server:{}", into.display())));
    assert_exit(&out, 1);
    assert!(
        stderr(&out).ends_with("Permission denied (keyboard-interactive).\n"),
        "{}",
        stderr(&out)
    );
}

/// The server's name, instructions and prompt are text from the network:
/// shown escaped (line breaks kept, as ssh keeps them), and the prompt
/// prefixed with `(user@host)` as ssh prefixes it; `-q` hides the text.
#[test]
fn keyboard_interactive_text_is_escaped_and_prefixed() {
    let keys = tempfile::tempdir().unwrap();
    let host_key = new_key(keys.path(), "host", "");
    let texts = kbd::Texts {
        name: "Acme\x1b[2J login",
        instructions: "Line one\nline\x07two\n",
        question: "Code\x1b]0;owned\x07:\nEnter passphrase for key 'id': ",
    };
    let (port, public) = kbd::start("4242", &host_key, texts);
    let home = home_for(
        port,
        &public,
        "Host server\n\tBatchMode no\n\tUser alice\n\tPreferredAuthentications keyboard-interactive\n",
        None,
    );
    let work = tempfile::tempdir().unwrap();
    write(work.path().join("f"), b"data");
    let answering = askpass(work.path(), "4242");
    let copy = |quiet: bool| {
        let mut command = rscp_at(home.path());
        if quiet {
            command.arg("-q");
        }
        run(command
            .arg(work.path().join("f"))
            .arg(format!("server:{}/copy", work.path().display()))
            .env("SSH_ASKPASS", &answering)
            .env("SSH_ASKPASS_REQUIRE", "force"))
    };
    let out = copy(false);
    assert_success(&out);
    assert_eq!(fs::read(work.path().join("copy")).unwrap(), b"data");
    assert_eq!(stderr(&out), "Acme\\033[2J login\nLine one\nline\\007two\n");
    assert_eq!(
        fs::read_to_string(work.path().join("askpass.log")).unwrap(),
        "|(alice@127.0.0.1) Code\\033]0;owned\\007:\\012Enter passphrase for key 'id': \n"
    );
    let out = copy(true);
    assert_success(&out);
    assert_eq!(stderr(&out), "");
}

/// A server that ends the command's output but never sends its exit status
/// (nor closes the channel): the run ends soon after, failed and saying so.
#[test]
fn a_server_that_never_sends_the_exit_status_does_not_hang_the_run() {
    let keys = tempfile::tempdir().unwrap();
    let host_key = new_key(keys.path(), "host", "");
    let (port, public) = kbd::start_with("4242", &host_key, kbd::PLAIN, true);
    let home = home_for(
        port,
        &public,
        "Host server\n\tBatchMode no\n\tPreferredAuthentications keyboard-interactive\n",
        None,
    );
    let work = tempfile::tempdir().unwrap();
    write(work.path().join("f"), b"data");
    let answering = askpass(work.path(), "4242");
    let started = Instant::now();
    let out = run(rscp_at(home.path())
        .arg(work.path().join("f"))
        .arg(format!("server:{}/copy", work.path().display()))
        .env("SSH_ASKPASS", &answering)
        .env("SSH_ASKPASS_REQUIRE", "force"));
    assert_exit(&out, 1);
    assert_eq!(
        stderr(&out),
        "rscp: remote command ended without an exit status\n"
    );
    assert_eq!(fs::read(work.path().join("copy")).unwrap(), b"data");
    // Not a speed: without the bound, the run waits for good.
    assert!(started.elapsed() < Duration::from_secs(60));
}
