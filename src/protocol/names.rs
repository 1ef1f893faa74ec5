//! Strict filename checking: which names a download may bring, given the
//! path that was asked for.
//!
//! The remote path goes to the remote shell unquoted, so the names that come
//! back are what that shell made of it. scp brace-expands the request and
//! glob-matches each received name against the last path component. rscp
//! models the shell a little further: quotes and backslashes make characters
//! literal, blanks separate several requested paths, and a leading `.` must
//! be matched explicitly (as the shell's own glob requires). Where the shell
//! would expand something we cannot know here (`$VAR`, `` `cmd` ``, `~`), any
//! single name is allowed for that path; it is still checked to be one safe
//! path component by the record parser.

/// Patterns beyond this many brace expansions are not worth checking.
const MAX_PATTERNS: usize = 1024;

/// The names a download may bring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameFilter {
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    /// The shell will expand something unknowable: any name.
    Any,
    Glob(Vec<Token>),
}

/// A unit of a name: a character, or a byte that is not valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Symbol {
    Char(char),
    Byte(u8),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(Symbol),
    /// `*`
    AnyString,
    /// `?`
    AnySymbol,
    /// `[...]`
    Class(Class),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Class {
    negated: bool,
    items: Vec<ClassItem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ClassItem {
    One(Symbol),
    Range(char, char),
    Named(String),
}

/// One byte of the request as the shell sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Lexed {
    byte: u8,
    quoted: bool,
}

/// A word of the request after quote removal; `None` for an expansion we
/// cannot predict.
type Word = Option<Vec<Lexed>>;

impl NameFilter {
    /// The filter for a download of `request` (the remote path as typed).
    pub fn for_request(request: &[u8]) -> NameFilter {
        let Some(words) = shell_words(request) else {
            return NameFilter::any();
        };
        let mut patterns = Vec::new();
        for word in words {
            let Some(word) = word else {
                patterns.push(Pattern::Any);
                continue;
            };
            let Some(expanded) = brace_expand(word) else {
                patterns.push(Pattern::Any);
                continue;
            };
            for alternative in expanded {
                let last = last_component(&alternative);
                let bytes: Vec<u8> = last.iter().map(|l| l.byte).collect();
                // `.` and `..` stand for a directory whose name the
                // source chooses (rscp sends its real name).
                patterns.push(if bytes == b"." || bytes == b".." {
                    Pattern::Any
                } else {
                    Pattern::Glob(compile(last))
                });
                if patterns.len() > MAX_PATTERNS {
                    return NameFilter::any();
                }
            }
        }
        NameFilter { patterns }
    }

    /// Allows every name (used when the request cannot be modelled).
    pub fn any() -> NameFilter {
        NameFilter {
            patterns: vec![Pattern::Any],
        }
    }

    pub fn allows(&self, name: &[u8]) -> bool {
        let name = symbols(name);
        self.patterns.iter().any(|p| match p {
            Pattern::Any => true,
            Pattern::Glob(tokens) => glob_match(tokens, &name),
        })
    }
}

/// Splits the request into words the way a POSIX shell would, removing
/// quotes. `None` when the request holds shell syntax (`;`, `|`, `&`, `<`,
/// `>`, `(`, `)`) that makes the resulting names anyone's guess.
fn shell_words(request: &[u8]) -> Option<Vec<Word>> {
    let mut words: Vec<Word> = Vec::new();
    let mut current: Vec<Lexed> = Vec::new();
    let mut unknown = false;
    let mut in_word = false;
    let mut i = 0;
    let push = |current: &mut Vec<Lexed>, byte, quoted| current.push(Lexed { byte, quoted });
    while i < request.len() {
        let c = request[i];
        match c {
            b' ' | b'\t' | b'\n' => {
                if in_word {
                    words.push((!unknown).then(|| std::mem::take(&mut current)));
                    current.clear();
                    unknown = false;
                    in_word = false;
                }
                i += 1;
                continue;
            }
            b'#' if !in_word => break,
            b';' | b'|' | b'&' | b'<' | b'>' | b'(' | b')' => return None,
            _ => {}
        }
        // A tilde prefix with nothing after it names an unknowable directory.
        if c == b'~' && !in_word {
            let rest = &request[i..];
            let prefix_end = rest
                .iter()
                .position(|&b| b == b'/' || b == b' ')
                .unwrap_or(rest.len());
            let after = &rest[prefix_end..];
            if !after.iter().take_while(|&&b| b != b' ').any(|&b| b != b'/') {
                unknown = true;
            }
        }
        in_word = true;
        match c {
            b'\\' => {
                match request.get(i + 1) {
                    Some(&next) => push(&mut current, next, true),
                    None => push(&mut current, b'\\', true),
                }
                i += 2;
            }
            b'\'' => {
                i += 1;
                while i < request.len() && request[i] != b'\'' {
                    push(&mut current, request[i], true);
                    i += 1;
                }
                i += 1;
            }
            b'"' => {
                i += 1;
                while i < request.len() && request[i] != b'"' {
                    match request[i] {
                        b'$' | b'`' => unknown = true,
                        b'\\'
                            if matches!(
                                request.get(i + 1),
                                Some(b'$' | b'`' | b'"' | b'\\' | b'\n')
                            ) =>
                        {
                            i += 1;
                        }
                        _ => {}
                    }
                    push(&mut current, request[i], true);
                    i += 1;
                }
                i += 1;
            }
            b'$' | b'`' => {
                unknown = true;
                i += 1;
            }
            _ => {
                push(&mut current, c, false);
                i += 1;
            }
        }
    }
    if in_word {
        words.push((!unknown).then_some(current));
    }
    Some(words)
}

/// csh-style brace expansion of unquoted `{a,b}` groups, as scp does before
/// matching. `None` when the word holds a `{x..y}` sequence (bash expands
/// those; we do not try) or expands past [`MAX_PATTERNS`].
fn brace_expand(word: Vec<Lexed>) -> Option<Vec<Vec<Lexed>>> {
    let mut done = Vec::new();
    let mut todo = vec![word];
    while let Some(word) = todo.pop() {
        match find_brace_group(&word)? {
            None => done.push(word),
            Some((open, close, commas)) => {
                let mut bounds = vec![open];
                bounds.extend(commas);
                bounds.push(close);
                for pair in bounds.windows(2) {
                    let mut alternative = word[..open].to_vec();
                    alternative.extend_from_slice(&word[pair[0] + 1..pair[1]]);
                    alternative.extend_from_slice(&word[close + 1..]);
                    todo.push(alternative);
                }
            }
        }
        if done.len() + todo.len() > MAX_PATTERNS {
            return None;
        }
    }
    Some(done)
}

type BraceGroup = (usize, usize, Vec<usize>);

/// The first unquoted `{...}` holding a top-level comma: its open and close
/// positions and its commas. `Some(None)` when there is none.
fn find_brace_group(word: &[Lexed]) -> Option<Option<BraceGroup>> {
    let special = |i: usize, b: u8| word[i].byte == b && !word[i].quoted;
    for open in (0..word.len()).filter(|&i| special(i, b'{')) {
        let mut depth = 0;
        let mut commas = Vec::new();
        for i in open + 1..word.len() {
            if special(i, b'{') {
                depth += 1;
            } else if special(i, b'}') {
                if depth == 0 {
                    if !commas.is_empty() {
                        return Some(Some((open, i, commas)));
                    }
                    let inner: Vec<u8> = word[open + 1..i].iter().map(|l| l.byte).collect();
                    if inner.windows(2).any(|w| w == b"..") {
                        return None;
                    }
                    break;
                }
                depth -= 1;
            } else if special(i, b',') && depth == 0 {
                commas.push(i);
            }
        }
    }
    Some(None)
}

/// What follows the last `/`, once trailing slashes are dropped.
fn last_component(word: &[Lexed]) -> &[Lexed] {
    let end = word
        .iter()
        .rposition(|l| l.byte != b'/')
        .map_or(0, |i| i + 1);
    let trimmed = &word[..end];
    let start = trimmed
        .iter()
        .rposition(|l| l.byte == b'/')
        .map_or(0, |i| i + 1);
    &trimmed[start..]
}

fn symbols(bytes: &[u8]) -> Vec<Symbol> {
    let mut out = Vec::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.extend(chunk.valid().chars().map(Symbol::Char));
        out.extend(chunk.invalid().iter().map(|&b| Symbol::Byte(b)));
    }
    out
}

/// Turns a component into glob tokens: unquoted `*`, `?` and `[...]` are
/// special, everything else literal.
fn compile(component: &[Lexed]) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < component.len() {
        let l = component[i];
        if !l.quoted {
            match l.byte {
                b'*' => {
                    tokens.push(Token::AnyString);
                    i += 1;
                    continue;
                }
                b'?' => {
                    tokens.push(Token::AnySymbol);
                    i += 1;
                    continue;
                }
                b'[' => {
                    if let Some((class, next)) = parse_class(component, i + 1) {
                        tokens.push(Token::Class(class));
                        i = next;
                        continue;
                    }
                }
                _ => {}
            }
        }
        // A run of literal bytes, decoded as text where it is text.
        let start = i;
        i += 1;
        while i < component.len() && component[i].byte >= 0x80 {
            i += 1;
        }
        let bytes: Vec<u8> = component[start..i].iter().map(|l| l.byte).collect();
        tokens.extend(symbols(&bytes).into_iter().map(Token::Literal));
    }
    tokens
}

/// Parses a bracket expression starting after its `[`; returns it and the
/// position after its `]`, or `None` when it is not closed (then the `[`
/// is an ordinary character, as in the shell).
fn parse_class(component: &[Lexed], mut i: usize) -> Option<(Class, usize)> {
    let mut negated = false;
    if let Some(l) = component.get(i)
        && !l.quoted
        && (l.byte == b'!' || l.byte == b'^')
    {
        negated = true;
        i += 1;
    }
    let rest: Vec<u8> = component[i..].iter().map(|l| l.byte).collect();
    let chars: Vec<Symbol> = symbols(&rest);
    let mut items = Vec::new();
    let mut j = 0;
    // Positions in `chars` map back to bytes for the return value.
    let byte_len = |s: &Symbol| match s {
        Symbol::Char(c) => c.len_utf8(),
        Symbol::Byte(_) => 1,
    };
    let mut consumed = 0;
    let mut first = true;
    while j < chars.len() {
        let s = chars[j];
        if s == Symbol::Char(']') && !first {
            return Some((Class { negated, items }, i + consumed + 1));
        }
        first = false;
        if s == Symbol::Char('[') && chars.get(j + 1) == Some(&Symbol::Char(':')) {
            let tail: String = chars[j + 2..]
                .iter()
                .map_while(|s| match s {
                    Symbol::Char(c) => Some(*c),
                    Symbol::Byte(_) => None,
                })
                .collect();
            if let Some(end) = tail.find(":]") {
                items.push(ClassItem::Named(tail[..end].to_owned()));
                let used = 2 + end + 2;
                consumed += chars[j..j + used].iter().map(byte_len).sum::<usize>();
                j += used;
                continue;
            }
        }
        if let (Symbol::Char(lo), Some(Symbol::Char('-')), Some(Symbol::Char(hi))) =
            (s, chars.get(j + 1), chars.get(j + 2))
            && *hi != ']'
        {
            items.push(ClassItem::Range(lo, *hi));
            consumed += lo.len_utf8() + 1 + hi.len_utf8();
            j += 3;
            continue;
        }
        items.push(ClassItem::One(s));
        consumed += byte_len(&s);
        j += 1;
    }
    None
}

impl Class {
    fn matches(&self, s: Symbol) -> bool {
        let hit = self.items.iter().any(|item| match (item, s) {
            (ClassItem::One(one), _) => *one == s,
            (ClassItem::Range(lo, hi), Symbol::Char(c)) => (*lo..=*hi).contains(&c),
            (ClassItem::Named(name), Symbol::Char(c)) => named_class(name, c),
            _ => false,
        });
        hit != self.negated
    }
}

fn named_class(name: &str, c: char) -> bool {
    match name {
        "alpha" => c.is_alphabetic(),
        "digit" => c.is_ascii_digit(),
        "alnum" => c.is_alphanumeric(),
        "upper" => c.is_uppercase(),
        "lower" => c.is_lowercase(),
        "space" => c.is_whitespace(),
        "blank" => c == ' ' || c == '\t',
        "punct" => c.is_ascii_punctuation(),
        "xdigit" => c.is_ascii_hexdigit(),
        "cntrl" => c.is_control(),
        "print" => !c.is_control(),
        "graph" => !c.is_control() && !c.is_whitespace(),
        // An unknown class: do not refuse what the shell might accept.
        _ => true,
    }
}

/// Glob matching with the shell's rule that a leading `.` is only matched
/// by a literal `.`.
fn glob_match(tokens: &[Token], name: &[Symbol]) -> bool {
    if name.first() == Some(&Symbol::Char('.'))
        && tokens.first() != Some(&Token::Literal(Symbol::Char('.')))
    {
        return false;
    }
    // Iterative matching, backtracking to the last `*` on a mismatch.
    let (mut t, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        let step = match tokens.get(t) {
            Some(Token::AnyString) => {
                star = Some((t, n));
                t += 1;
                continue;
            }
            Some(Token::Literal(s)) => *s == name[n],
            Some(Token::AnySymbol) => true,
            Some(Token::Class(class)) => class.matches(name[n]),
            None => false,
        };
        if step {
            t += 1;
            n += 1;
        } else if let Some((star_t, star_n)) = star {
            t = star_t + 1;
            n = star_n + 1;
            star = Some((star_t, star_n + 1));
        } else {
            return false;
        }
    }
    tokens[t..].iter().all(|tok| *tok == Token::AnyString)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(request: &str, name: &str) -> bool {
        NameFilter::for_request(request.as_bytes()).allows(name.as_bytes())
    }

    #[test]
    fn literal_paths_match_their_last_component() {
        assert!(allows("/x/a", "a"));
        assert!(allows("a", "a"));
        assert!(!allows("/x/a", "b"));
        assert!(allows("/x/dir/", "dir"));
        assert!(!allows("/x/a/", "b"));
        assert!(allows("~/notes.txt", "notes.txt"));
        assert!(!allows("/x/a", "x"));
    }

    #[test]
    fn globs_follow_the_shell() {
        assert!(allows("/x/*.txt", "a.txt"));
        assert!(!allows("/x/*.txt", "a.txt2"));
        assert!(allows("/x/*", "anything"));
        assert!(allows("/x/file?", "file1"));
        assert!(allows("/x/file?", "fileé"));
        assert!(!allows("/x/file?", "file12"));
        assert!(allows("/x/[ab]c", "bc"));
        assert!(!allows("/x/[ab]c", "cc"));
        assert!(allows("/x/[!ab]c", "cc"));
        assert!(allows("/x/[a-c]x", "bx"));
        assert!(allows("/x/[[:digit:]]", "7"));
        assert!(!allows("/x/[[:digit:]]", "z"));
        assert!(allows("/x/[]]", "]"));
        assert!(allows("/x/[abc", "[abc"));
        assert!(allows("/x/a*b*c", "aXXbYYc"));
        assert!(!allows("/x/a*b*c", "aXXbYY"));
    }

    #[test]
    fn leading_dot_must_be_explicit() {
        assert!(!allows("/x/*", ".hidden"));
        assert!(!allows("/x/?hidden", ".hidden"));
        assert!(!allows("/x/[.]hidden", ".hidden"));
        assert!(allows("/x/.*", ".hidden"));
        assert!(allows("/x/.hidden", ".hidden"));
        assert!(allows("/x/a*", "a.b"));
    }

    #[test]
    fn braces_expand() {
        assert!(allows("/x/{a,b}", "a"));
        assert!(allows("/x/{a,b}", "b"));
        assert!(!allows("/x/{a,b}", "c"));
        assert!(allows("/x/{a,b}{1,2}", "b2"));
        assert!(allows("/x/pre{a,{b,c}}post", "precpost"));
        assert!(allows("{/x/a,/y/b}", "b"));
        assert!(allows("/x/{a}", "{a}"));
        assert!(allows("/x/{,b}c", "c"));
        assert!(allows("/x/{1..3}", "2"), "sequences are left to the shell");
    }

    #[test]
    fn quoting_makes_characters_literal() {
        assert!(allows("'my file'", "my file"));
        assert!(allows("\"my file\"", "my file"));
        assert!(allows("my\\ file", "my file"));
        assert!(!allows("'*'", "x"));
        assert!(allows("'*'", "*"));
        assert!(!allows("'{a,b}'", "a"));
        assert!(allows("'{a,b}'", "{a,b}"));
        assert!(allows("'/x/dir with space'/f", "f"));
    }

    #[test]
    fn blanks_separate_requests() {
        assert!(allows("/x/a /y/b", "a"));
        assert!(allows("/x/a /y/b", "b"));
        assert!(!allows("/x/a /y/b", "c"));
    }

    #[test]
    fn unknowable_expansions_allow_any_name() {
        assert!(allows("$HOME", "root"));
        assert!(allows("\"$HOME\"", "root"));
        assert!(allows("`pwd`", "x"));
        assert!(allows("~", "root"));
        assert!(allows("~/", "root"));
        assert!(allows("~user", "user"));
        assert!(allows("a; echo b", "b"));
        // Only the word with the expansion is open.
        let filter = NameFilter::for_request(b"/x/a $V");
        assert!(filter.allows(b"zzz"));
        assert!(!NameFilter::for_request(b"/x/a ~/b").allows(b"zzz"));
    }

    #[test]
    fn dot_requests_take_the_name_the_source_gives() {
        // `host:` asks for `.`, the login directory, under its real name.
        assert!(allows(".", "alice"));
        assert!(allows("/srv/data/..", "srv"));
        assert!(!allows("/", "x"));
    }

    #[test]
    fn non_utf8_names() {
        let filter = NameFilter::for_request(b"/x/caf\xe9");
        assert!(filter.allows(b"caf\xe9"));
        assert!(!filter.allows(b"cafe"));
        assert!(NameFilter::for_request(b"/x/caf?").allows(b"caf\xe9"));
    }

    #[test]
    fn explosive_braces_give_up_safely() {
        let request = "{a,b}".repeat(12);
        assert!(allows(&request, "zzz"));
    }
}
