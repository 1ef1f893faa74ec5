use super::*;

/// A home directory with the given files (paths relative to it).
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn with(files: &[(&str, &str)]) -> Home {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        Home { dir }
    }

    fn path(&self) -> String {
        self.dir.path().display().to_string()
    }

    fn request(&self, host: &str) -> Request {
        Request {
            host: host.into(),
            local_user: "me".into(),
            home: self.path(),
            ..Request::default()
        }
    }

    fn resolve(&self, host: &str) -> Settings {
        resolve(&self.request(host)).unwrap()
    }
}

#[test]
fn defaults() {
    let home = Home::with(&[]);
    let s = home.resolve("example.org");
    assert_eq!(s.hostname, "example.org");
    assert_eq!(s.port, 22);
    assert_eq!(s.user, "me");
    assert!(!s.identity_files_configured);
    assert_eq!(
        s.identity_files[0],
        PathBuf::from(format!("{}/.ssh/id_rsa", home.path()))
    );
    assert_eq!(
        s.user_known_hosts_files,
        vec![
            PathBuf::from(format!("{}/.ssh/known_hosts", home.path())),
            PathBuf::from(format!("{}/.ssh/known_hosts2", home.path()))
        ]
    );
    assert_eq!(s.strict_host_key_checking, StrictHostKeyChecking::Ask);
    assert_eq!(s.number_of_password_prompts, 3);
    assert_eq!(s.connection_attempts, 1);
    assert_eq!(s.server_alive_count_max, 3);
    assert_eq!(s.address_family, AddressFamily::Any);
    assert_eq!(s.preferred_authentications[2], "publickey");
}

#[test]
fn the_first_value_obtained_wins() {
    let home = Home::with(&[(
        ".ssh/config",
        "Host *.example.org\n  Port 1000\n  User alice\nHost web.example.org\n  Port 2000\n  HostName 10.0.0.5\n",
    )]);
    let s = home.resolve("web.example.org");
    assert_eq!(
        (s.port, s.user.as_str(), s.hostname.as_str()),
        (1000, "alice", "10.0.0.5")
    );
    let s = home.resolve("other.net");
    assert_eq!((s.port, s.user.as_str()), (22, "me"));
}

#[test]
fn the_command_line_comes_first() {
    let home = Home::with(&[(
        ".ssh/config",
        "Port 1000\nUser alice\nIdentityFile ~/.ssh/from_file\n",
    )]);
    let mut request = home.request("h");
    request.command_line = vec!["Port=3000".into(), "IdentityFile /cli/key".into()];
    let s = resolve(&request).unwrap();
    assert_eq!(s.port, 3000);
    assert_eq!(
        s.identity_files,
        vec![
            PathBuf::from("/cli/key"),
            PathBuf::from(format!("{}/.ssh/from_file", home.path()))
        ]
    );
    request.port = Some(4000);
    request.user = Some("bob".into());
    let s = resolve(&request).unwrap();
    assert_eq!((s.port, s.user.as_str()), (4000, "bob"));
}

#[test]
fn host_patterns_negation_and_case() {
    let home = Home::with(&[(
        ".ssh/config",
        "Host * !secret.lan\n  User everyone\nHost db? backup\n  Port 5432\nHost SECRET.lan\n  User vault\n",
    )]);
    assert_eq!(home.resolve("a.lan").user, "everyone");
    assert_eq!(home.resolve("secret.lan").user, "vault");
    assert_eq!(home.resolve("Secret.LAN").user, "vault");
    assert_eq!(home.resolve("db1").port, 5432);
    assert_eq!(home.resolve("backup").port, 5432);
    assert_eq!(home.resolve("db12").port, 22);
}

#[test]
fn match_criteria() {
    let home = Home::with(&[(
        ".ssh/config",
        "Host alias\n  HostName real.example.org\n\
         Match host real.example.org\n  Port 2001\n\
         Match originalhost alias user me\n  User fromalias\n\
         Match localuser me !host nothing\n  Compression yes\n\
         Match user fromalias\n  ConnectionAttempts 7\n\
         Match exec \"test %h = real.example.org\"\n  ServerAliveCountMax 9\n\
         Match exec false\n  NumberOfPasswordPrompts 1\n\
         Match all\n  BatchMode yes\n",
    )]);
    let s = home.resolve("alias");
    assert_eq!(s.hostname, "real.example.org");
    assert_eq!(s.port, 2001, "Match host sees the HostName obtained so far");
    assert_eq!(s.user, "fromalias");
    assert!(s.compression);
    assert_eq!(
        s.connection_attempts, 7,
        "Match user sees the User obtained so far"
    );
    assert_eq!(s.server_alive_count_max, 9);
    assert_eq!(s.number_of_password_prompts, 3);
    assert!(s.batch_mode);

    let s = home.resolve("real.example.org");
    assert_eq!(s.port, 2001);
    assert_eq!(s.user, "me", "originalhost did not match");
}

#[test]
fn match_errors() {
    let home = Home::with(&[(".ssh/config", "Match sky blue\n  Port 1\n")]);
    let err = resolve(&home.request("h")).unwrap_err();
    assert!(
        err.0.ends_with("line 1: Unsupported Match attribute sky"),
        "{err}"
    );
    let home = Home::with(&[(".ssh/config", "Match host\n")]);
    assert!(resolve(&home.request("h")).is_err());
}

#[test]
fn include_relative_glob_and_scoped() {
    let home = Home::with(&[
        (
            ".ssh/config",
            "Include conf.d/*.conf\nHost other\n  Include extra\nHost *\n  User last\n",
        ),
        (".ssh/conf.d/10-a.conf", "Host a\n  Port 10\n"),
        (".ssh/conf.d/20-b.conf", "Host b\n  Port 20\nPort 99\n"),
        (".ssh/extra", "Compression yes\n"),
    ]);
    let s = home.resolve("a");
    assert_eq!(s.port, 10);
    assert_eq!(
        s.user, "last",
        "an included Host does not end the including block"
    );
    assert!(!s.compression, "Include inside a block that does not apply");
    assert_eq!(home.resolve("b").port, 20);
    assert!(home.resolve("other").compression);
}

#[test]
fn include_depth_is_limited() {
    let home = Home::with(&[(".ssh/config", "Include config\n")]);
    let err = resolve(&home.request("h")).unwrap_err();
    assert!(
        err.0.contains("Too many recursive configuration includes"),
        "{err}"
    );
}

#[test]
fn unknown_keywords_are_errors_unless_ignored() {
    let home = Home::with(&[(".ssh/config", "Host *\n  NoSuchOption yes\n")]);
    let err = resolve(&home.request("h")).unwrap_err();
    assert!(
        err.0.ends_with("terminating, 1 bad configuration options"),
        "{err}"
    );
    let home = Home::with(&[(
        ".ssh/config",
        "IgnoreUnknown NoSuch*,Other\nNoSuchOption yes\nPort 7\n",
    )]);
    assert_eq!(home.resolve("h").port, 7);
}

#[test]
fn known_but_ignored_keywords_are_noted() {
    let home = Home::with(&[(
        ".ssh/config",
        "SendEnv LANG LC_*\nGSSAPIAuthentication yes\nHashKnownHosts yes\n",
    )]);
    let s = home.resolve("h");
    assert_eq!(
        s.ignored,
        vec!["SendEnv".to_owned(), "GSSAPIAuthentication".to_owned()]
    );
    assert!(s.hash_known_hosts);
}

#[test]
fn bad_values_are_errors_even_where_they_do_not_apply() {
    let home = Home::with(&[(".ssh/config", "Host elsewhere\n  Port notanumber\n")]);
    let err = resolve(&home.request("h")).unwrap_err();
    assert!(
        err.0.ends_with("line 2: Badly formatted port number."),
        "{err}"
    );
}

#[test]
fn tokens_and_tilde() {
    let home = Home::with(&[(
        ".ssh/config",
        "Host web\n  HostName %h.example.org\n  User deploy\n  Port 2222\n  \
         IdentityFile ~/.ssh/id_%r@%h\n  UserKnownHostsFile ~/.ssh/kh_%n /dev/null\n  \
         ProxyCommand nc -X connect -x \"proxy:8080\" %h %p\n",
    )]);
    let s = home.resolve("web");
    assert_eq!(s.hostname, "web.example.org");
    assert_eq!(
        s.identity_files,
        vec![PathBuf::from(format!(
            "{}/.ssh/id_deploy@web.example.org",
            home.path()
        ))]
    );
    assert_eq!(
        s.user_known_hosts_files,
        vec![
            PathBuf::from(format!("{}/.ssh/kh_web", home.path())),
            PathBuf::from("/dev/null")
        ]
    );
    assert_eq!(
        s.proxy_command.as_deref(),
        Some("nc -X connect -x \"proxy:8080\" web.example.org 2222")
    );
}

#[test]
fn none_values() {
    let home = Home::with(&[(
        ".ssh/config",
        "ProxyJump none\nProxyCommand none\nUserKnownHostsFile none\nIdentityAgent none\n",
    )]);
    let s = home.resolve("h");
    assert_eq!((s.proxy_jump, s.proxy_command), (None, None));
    assert!(s.user_known_hosts_files.is_empty());
    assert_eq!(s.identity_agent, None);
}

#[test]
fn dash_f_file_and_none() {
    let home = Home::with(&[(".ssh/config", "Port 1\n"), ("other.conf", "Port 2\n")]);
    let mut request = home.request("h");
    request.files = ConfigFiles::File(home.dir.path().join("other.conf"));
    assert_eq!(resolve(&request).unwrap().port, 2);
    request.files = ConfigFiles::None;
    assert_eq!(resolve(&request).unwrap().port, 22);
    request.files = ConfigFiles::File(home.dir.path().join("missing.conf"));
    let err = resolve(&request).unwrap_err();
    assert!(err.0.starts_with("Can't open user config file"), "{err}");
}

#[test]
fn the_system_file_comes_last() {
    let home = Home::with(&[
        (".ssh/config", "Port 1\n"),
        ("system", "Port 2\nUser sys\n"),
    ]);
    let mut request = home.request("h");
    request.system_config = Some(home.dir.path().join("system"));
    let s = resolve(&request).unwrap();
    assert_eq!((s.port, s.user.as_str()), (1, "sys"));
}

#[test]
fn a_writable_user_config_is_refused() {
    let home = Home::with(&[(".ssh/config", "Port 1\n")]);
    use std::os::unix::fs::PermissionsExt;
    let path = home.dir.path().join(".ssh/config");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let err = resolve(&home.request("h")).unwrap_err();
    assert_eq!(
        err.0,
        format!("Bad owner or permissions on {}", path.display())
    );
}

#[test]
fn command_line_cannot_open_blocks() {
    let home = Home::with(&[]);
    let mut request = home.request("h");
    request.command_line = vec!["Host foo".into()];
    assert!(resolve(&request).is_err());
}

#[test]
fn line_splitting() {
    assert_eq!(split_line("   # comment"), Ok(None));
    assert_eq!(split_line(""), Ok(None));
    assert_eq!(
        split_line("Port=22"),
        Ok(Some(("Port".into(), vec!["22".into()], "22".into())))
    );
    assert_eq!(
        split_line("IdentityFile \"/a b/key\" # trailing"),
        Ok(Some((
            "IdentityFile".into(),
            vec!["/a b/key".into()],
            "\"/a b/key\" # trailing".into()
        )))
    );
    assert!(split_line("User \"unterminated").is_err());
    // As ssh's argv_split: single quotes, escapes, joined quotes, and only
    // ASCII blanks between words (checked against ssh -G here).
    let args = |line: &str| split_line(line).unwrap().unwrap().1;
    assert_eq!(args("UserKnownHostsFile '/x/my kh'"), ["/x/my kh"]);
    assert_eq!(args("UserKnownHostsFile /tmp/my\\ kh"), ["/tmp/my kh"]);
    assert_eq!(args("HostKeyAlias 'alias1'"), ["alias1"]);
    assert_eq!(args("X \"a\"b'c d' e"), ["abc d", "e"]);
    assert_eq!(args("X a\\q \"\\\"in\\\\\""), ["a\\q", "\"in\\"]);
    assert_eq!(args("Host prod\u{a0}* other"), ["prod\u{a0}*", "other"]);
    assert_eq!(args("X a #comment"), ["a"]);
    assert_eq!(args("X a#b"), ["a#b"]);
    assert_eq!(
        split_line("StrictHostKeyChecking\u{a0}no")
            .unwrap()
            .unwrap()
            .0,
        "StrictHostKeyChecking\u{a0}no"
    );
    assert_eq!(
        split_line("Port = 22 \x0c").unwrap().unwrap(),
        ("Port".into(), vec!["22".into()], "22".into())
    );
    assert!(split_line("User 'unterminated").is_err());
}

#[test]
fn jump_hops() {
    assert_eq!(parse_jump("h").unwrap(), (None, "h".into(), None));
    assert_eq!(
        parse_jump("u@h:2222").unwrap(),
        (Some("u".into()), "h".into(), Some(2222))
    );
    assert_eq!(
        parse_jump("[::1]:22").unwrap(),
        (None, "::1".into(), Some(22))
    );
    assert_eq!(
        parse_jump("ssh://a@b").unwrap(),
        (Some("a".into()), "b".into(), None)
    );
    assert!(parse_jump("h:0").is_err());
    assert!(parse_jump("u@").is_err());
}

#[test]
fn names_from_the_command_line_are_checked_as_ssh_checks_them() {
    let home = Home::with(&[(".ssh/config", "User from;file\nProxyJump j$x\n")]);
    let mut request = home.request("h");
    let refused = |request: &Request| resolve(request).unwrap_err().0;
    request.command_line = vec!["User=a;b".into()];
    assert_eq!(
        refused(&request),
        "a;b: remote username contains invalid characters"
    );
    request.command_line = vec!["ProxyJump ok@jump,x$(id)@j2".into()];
    assert_eq!(
        refused(&request),
        "x$(id): remote username contains invalid characters"
    );
    request.command_line = vec!["ProxyJump u@j`id`:22".into()];
    assert_eq!(
        refused(&request),
        "j`id`: hostname contains invalid characters"
    );
    // The user's own files are trusted, as in ssh.
    request.command_line = vec![];
    let s = resolve(&request).unwrap();
    assert_eq!(s.user, "from;file");
    assert_eq!(s.proxy_jump.as_deref(), Some("j$x"));
    request.command_line = vec!["User=alice".into(), "ProxyJump u@jump:2222".into()];
    assert_eq!(resolve(&request).unwrap().user, "alice");
}

#[test]
fn values_that_are_not_utf8_are_refused_not_changed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config");
    std::fs::write(
        &file,
        b"# caf\xe9 comments are fine\nUser alice # caf\xe9\nHost caf\xe9\n  Port 1\n",
    )
    .unwrap();
    let mut request = Request {
        host: "h".into(),
        local_user: "me".into(),
        home: dir.path().display().to_string(),
        files: ConfigFiles::File(file.clone()),
        ..Request::default()
    };
    let s = resolve(&request).unwrap();
    assert_eq!((s.user.as_str(), s.port), ("alice", 22));
    for line in [
        &b"UserKnownHostsFile /tmp/h\xe9/known_hosts\n"[..],
        b"IdentityFile ~/k\xe9y\n",
        b"ProxyCommand nc %h %p # \xe9\n",
        b"Match exec \"test -e /tmp/\xe9\"\n",
    ] {
        std::fs::write(&file, line).unwrap();
        let error = resolve(&request).unwrap_err().0;
        assert!(
            error.ends_with("a value with bytes that are not UTF-8 is not supported"),
            "{error}"
        );
    }
    request.files = ConfigFiles::None;
    request.command_line = vec!["UserKnownHostsFile=/tmp/h\u{fffd}".into()];
    assert!(resolve(&request).is_err());
    request.command_line = vec!["ConnectTimeout=0".into()];
    assert_eq!(resolve(&request).unwrap().connect_timeout, None);
}
