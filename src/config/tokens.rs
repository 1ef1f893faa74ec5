//! `%` tokens and `~` in ssh_config values.

use std::collections::HashMap;

/// Values for `%` tokens: `%h` host, `%p` port, `%r` remote user, `%n`
/// original host, `%u` local user, `%d` home, `%l` local host name, `%L`
/// its first label, `%i` uid, `%k` host key alias, `%j` proxy jump, `%C`
/// the connection hash, `%%` a percent sign.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    values: HashMap<char, String>,
}

impl Tokens {
    pub fn new() -> Tokens {
        Tokens::default()
    }

    pub fn set(&mut self, token: char, value: impl Into<String>) -> &mut Tokens {
        self.values.insert(token, value.into());
        self
    }

    /// Expands every `%x`. An unknown token is an error, as in ssh.
    pub fn expand(&self, text: &str) -> Result<String, String> {
        let mut out = String::with_capacity(text.len());
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('%') => out.push('%'),
                Some(token) => match self.values.get(&token) {
                    Some(value) => out.push_str(value),
                    None => return Err(format!("unknown key %{token}")),
                },
                None => return Err("invalid %-escape at end of string".into()),
            }
        }
        Ok(out)
    }
}

/// `~` and `~/...` become the home directory; `~user/...` that user's.
pub fn expand_tilde(path: &str, home: &str) -> String {
    if path == "~" {
        return home.to_owned();
    }
    if let Some(rest) = path.strip_prefix("~/") {
        return format!("{}/{rest}", home.trim_end_matches('/'));
    }
    if let Some(rest) = path.strip_prefix('~') {
        let (user, tail) = rest.split_once('/').unwrap_or((rest, ""));
        if let Ok(Some(entry)) = nix::unistd::User::from_name(user) {
            let dir = entry.dir.to_string_lossy().into_owned();
            return if tail.is_empty() {
                dir
            } else {
                format!("{}/{tail}", dir.trim_end_matches('/'))
            };
        }
    }
    path.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_expand() {
        let mut t = Tokens::new();
        t.set('h', "example.org")
            .set('p', "2222")
            .set('r', "alice")
            .set('d', "/home/a");
        assert_eq!(
            t.expand("%d/.ssh/id_%r@%h:%p").unwrap(),
            "/home/a/.ssh/id_alice@example.org:2222"
        );
        assert_eq!(t.expand("100%%").unwrap(), "100%");
        assert_eq!(t.expand("%z").unwrap_err(), "unknown key %z");
        assert!(t.expand("oops%").is_err());
    }

    #[test]
    fn tilde() {
        assert_eq!(expand_tilde("~", "/home/a"), "/home/a");
        assert_eq!(expand_tilde("~/.ssh/x", "/home/a/"), "/home/a/.ssh/x");
        assert_eq!(expand_tilde("/abs", "/home/a"), "/abs");
        assert_eq!(expand_tilde("~root/x", "/home/a"), "/root/x");
        assert_eq!(
            expand_tilde("~nosuchuser_xyz/x", "/home/a"),
            "~nosuchuser_xyz/x"
        );
    }
}
