//! ssh's patterns: `*` and `?` wildcards, `!` negation, comma lists.

/// Whether `text` matches the wildcard `pattern` (`*` any run, `?` one
/// character), as ssh's `match_pattern`.
pub fn matches(text: &str, pattern: &str) -> bool {
    let (t, p): (Vec<char>, Vec<char>) = (text.chars().collect(), pattern.chars().collect());
    let (mut ti, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if let Some((star_p, star_t)) = star {
            pi = star_p + 1;
            ti = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The outcome of matching a pattern list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListMatch {
    /// A positive pattern matched and no negated one did.
    Yes,
    /// Nothing matched.
    No,
    /// A negated pattern matched: a definite no.
    Negated,
}

/// Matches `text` against patterns (already split), ssh's
/// `match_pattern_list`: a negated match wins over any positive one.
pub fn match_list<'a>(
    text: &str,
    patterns: impl IntoIterator<Item = &'a str>,
    fold_case: bool,
) -> ListMatch {
    let text = if fold_case {
        text.to_lowercase()
    } else {
        text.to_owned()
    };
    let mut result = ListMatch::No;
    for pattern in patterns {
        let (negated, pattern) = match pattern.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, pattern),
        };
        let pattern = if fold_case {
            pattern.to_lowercase()
        } else {
            pattern.to_owned()
        };
        if matches(&text, &pattern) {
            if negated {
                return ListMatch::Negated;
            }
            result = ListMatch::Yes;
        }
    }
    result
}

/// A comma-separated list, as in `Match host a,b,!c`.
pub fn match_comma_list(text: &str, list: &str, fold_case: bool) -> bool {
    match_list(text, list.split(','), fold_case) == ListMatch::Yes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(matches("host.example.org", "*.example.org"));
        assert!(matches("a", "?"));
        assert!(!matches("ab", "?"));
        assert!(matches("anything", "*"));
        assert!(matches("", "*"));
        assert!(matches("web12", "web*2"));
        assert!(!matches("web13", "web*2"));
        assert!(matches("exact", "exact"));
    }

    #[test]
    fn negation_wins() {
        let list = ["*.example.org", "!secret.example.org"];
        assert_eq!(match_list("www.example.org", list, true), ListMatch::Yes);
        assert_eq!(
            match_list("secret.example.org", list, true),
            ListMatch::Negated
        );
        assert_eq!(match_list("other.net", list, true), ListMatch::No);
        assert_eq!(match_list("WWW.Example.ORG", list, true), ListMatch::Yes);
        assert!(match_comma_list("b", "a,b", false));
        assert!(!match_comma_list("b", "*,!b", false));
        // A list of only negations matches nothing.
        assert_eq!(match_list("x", ["!y"], false), ListMatch::No);
    }
}
