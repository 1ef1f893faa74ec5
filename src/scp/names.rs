//! Strict filename checking: which names a download may bring, given the
//! path that was asked for.
//!
//! The remote path goes to the remote shell unquoted, so the names that come
//! back are what that shell made of it. scp brace-expands the request and
//! matches each received name against the last path component, literally
//! or as a glob. rscp models the shell a little further: quotes and
//! backslashes make characters literal, blanks separate several requested
//! paths, shell syntax (`;`, `|`, `&`, `<`, `>`, `(`, `)`, a newline) ends
//! the list of paths, `{x..y}` sequences expand as bash expands them, and a
//! leading `.` must be matched explicitly (as the shell's own glob requires).
//!
//! Only the last component of each requested path decides. Where that
//! component holds something only the remote shell knows (`$VAR`,
//! `` `cmd` ``), the match is widened for that component alone: an unquoted
//! expansion may become any name; a quoted one any text, followed by what
//! the component says after it. A request for a directory whose name the
//! remote side decides (`.`, `..`, `~`, `~user`, and `host:`, which asks for
//! `.`) accepts a directory of any name, and no file.

/// Most alternatives one word may brace-expand to; beyond that, each brace
/// group is matched as `*`.
const MAX_PATTERNS: usize = 1024;

/// The most pieces a word's expansion may hold in all (the memory it may
/// cost: a long word times many alternatives); beyond that, as above.
const MAX_EXPANDED: usize = 1 << 20;

/// The longest bracket expression read as one, in symbols.
const MAX_CLASS: usize = 64;

/// The most steps one name's matching may take (live states times
/// symbols, over all patterns): a name that costs more against the user's
/// patterns is refused.
const MAX_MATCH_STEPS: usize = 1 << 21;

/// The names a download may bring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameFilter {
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Pattern {
    /// The component is an expansion only the remote shell knows: any name.
    Any,
    /// A directory whose name the remote side decides: any directory, no file.
    AnyDirectory,
    /// A shell glob, and the component's text as written (after quote
    /// removal): a word whose glob matches nothing reaches scp unchanged.
    Glob {
        tokens: Vec<Token>,
        literal: Option<Vec<u8>>,
    },
}

/// A unit of a name: a character, or a byte that is not valid UTF-8.
/// (In a request, also a sequence too long to spell out.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Symbol {
    Char(char),
    Byte(u8),
    /// `{1..100000}`: a run of digits (never in a name).
    Digits,
    /// `"$VAR"`: any text (never in a name).
    Expansion,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Token {
    Literal(Symbol),
    /// `*`
    AnyString,
    /// What a quoted expansion leaves: any text, a leading `.` included.
    AnyText,
    /// `?`
    AnySymbol,
    /// One or more digits or `-` (a long `{x..y}` sequence).
    Digits,
    /// `[...]`
    Class(Class),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Class {
    negated: bool,
    items: Vec<ClassItem>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ClassItem {
    One(Symbol),
    Range(char, char),
    Named(String),
}

/// A piece of a word as the remote shell reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Piece {
    /// A byte; quoted bytes are never special.
    Byte { byte: u8, quoted: bool },
    /// `$...` or `` `...` ``: text only the remote shell knows. Unquoted,
    /// it may also split into several words and be globbed.
    Expansion { quoted: bool },
    /// A tilde prefix (`~`, `~user`): a home directory.
    Home,
    /// A numeric `{x..y}` sequence too long to spell out.
    Digits,
}

type Word = Vec<Piece>;

/// A symbol of a component, with whether it was quoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sym {
    symbol: Symbol,
    quoted: bool,
}

impl NameFilter {
    /// The filter for a download of `request` (the remote path as typed).
    pub fn for_request(request: &[u8]) -> NameFilter {
        let mut patterns = Vec::new();
        let mut seen = std::collections::HashSet::new();
        // What all words may expand to together, as for one word.
        let mut budget = MAX_EXPANDED;
        for word in shell_words(request) {
            let words = alternatives(word, budget > 0);
            budget = budget.saturating_sub(words.iter().map(Vec::len).sum());
            for alternative in words {
                if let Some(pattern) = pattern_for(last_component(&alternative))
                    && seen.insert(pattern.clone())
                {
                    patterns.push(pattern);
                }
            }
        }
        NameFilter { patterns }
    }

    /// Whether a file (or, with `directory`, a directory) called `name`
    /// may arrive at the top of the transfer.
    pub fn allows(&self, name: &[u8], directory: bool) -> bool {
        let symbols = symbols(name);
        // For all patterns together: a name that costs more is refused.
        let mut budget = MAX_MATCH_STEPS;
        self.patterns.iter().any(|pattern| match pattern {
            Pattern::Any => true,
            // A directory's real name, which is not hidden (a hostile
            // server would send `.ssh`).
            Pattern::AnyDirectory => directory && !name.starts_with(b"."),
            Pattern::Glob { tokens, literal } => {
                literal.as_deref() == Some(name) || glob_match(tokens, &symbols, &mut budget)
            }
        })
    }
}

/// Reads the request as a POSIX shell would read the arguments of the
/// command it ends (quotes removed, expansions marked). A request the
/// shell cannot parse (an unclosed quote) runs nothing: no words.
/// Read as both a POSIX shell and bash would read it (they differ only
/// in bash's `$'...'` and `$"..."`), the words of either.
fn shell_words(request: &[u8]) -> Vec<Word> {
    let lex = |bash| {
        let mut lexer = Lexer {
            input: request,
            at: 0,
            bash,
            homes: Vec::new(),
            last_home: Vec::new(),
        };
        lexer.words().unwrap_or_default()
    };
    let mut words = lex(false);
    if request.contains(&b'$') {
        let mut seen: std::collections::HashSet<Word> = words.iter().cloned().collect();
        for word in lex(true) {
            if seen.insert(word.clone()) {
                words.push(word);
            }
        }
    }
    words
}

struct Lexer<'a> {
    input: &'a [u8],
    at: usize,
    /// Read `$'...'` (ANSI-C quoting) and `$"..."` as bash does; a POSIX
    /// shell reads a `$` there as itself.
    bash: bool,
    /// The login name of each tilde prefix, with the index of its word.
    homes: Vec<(usize, Vec<u8>)>,
    /// The login name of the tilde prefix just read.
    last_home: Vec<u8>,
}

/// The shell would not run the command at all (an unclosed quote).
struct SyntaxError;

impl Lexer<'_> {
    fn peek(&self) -> Option<u8> {
        self.input.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    fn words(&mut self) -> Result<Vec<Word>, SyntaxError> {
        let mut words = Vec::new();
        let mut word: Word = Vec::new();
        let mut in_word = false;
        while let Some(c) = self.peek() {
            match c {
                b' ' | b'\t' => {
                    self.at += 1;
                    if in_word {
                        words.push(std::mem::take(&mut word));
                        in_word = false;
                    }
                    continue;
                }
                // The end of scp's arguments: what follows is another
                // command, a redirection or a comment.
                b'\n' | b';' | b'&' | b'|' | b'<' | b'>' | b'(' | b')' => break,
                b'#' if !in_word => break,
                b'~' if !in_word && self.tilde_prefix() => {
                    let name = std::mem::take(&mut self.last_home);
                    self.homes.push((words.len(), name));
                    word.push(Piece::Home);
                    in_word = true;
                    continue;
                }
                _ => {}
            }
            in_word = true;
            self.at += 1;
            let quoted = |byte| Piece::Byte { byte, quoted: true };
            match c {
                b'\\' => match self.next() {
                    Some(b'\n') => {}
                    Some(byte) => word.push(quoted(byte)),
                    None => word.push(quoted(b'\\')),
                },
                b'\'' => loop {
                    match self.next().ok_or(SyntaxError)? {
                        b'\'' => break,
                        byte => word.push(quoted(byte)),
                    }
                },
                b'"' => loop {
                    match self.next().ok_or(SyntaxError)? {
                        b'"' => break,
                        b'\\' => match self.peek() {
                            Some(next @ (b'$' | b'`' | b'"' | b'\\')) => {
                                self.at += 1;
                                word.push(quoted(next));
                            }
                            Some(b'\n') => self.at += 1,
                            _ => word.push(quoted(b'\\')),
                        },
                        b'$' => word.push(match self.dollar()? {
                            true => Piece::Expansion { quoted: true },
                            false => quoted(b'$'),
                        }),
                        b'`' => {
                            self.backquote()?;
                            word.push(Piece::Expansion { quoted: true });
                        }
                        byte => word.push(quoted(byte)),
                    }
                },
                b'$' if self.bash && self.peek() == Some(b'\'') => {
                    self.at += 1;
                    self.ansi_c_quoted(&mut word)?;
                }
                // bash's locale quoting: the string as if double-quoted.
                b'$' if self.bash && self.peek() == Some(b'"') => {}
                b'$' => word.push(match self.dollar()? {
                    true => Piece::Expansion { quoted: false },
                    false => Piece::Byte {
                        byte: b'$',
                        quoted: false,
                    },
                }),
                b'`' => {
                    self.backquote()?;
                    word.push(Piece::Expansion { quoted: false });
                }
                byte => word.push(Piece::Byte {
                    byte,
                    quoted: false,
                }),
            }
        }
        if in_word {
            words.push(word);
        }
        Ok(words)
    }

    /// At a `~` that starts a word: consumes a tilde prefix (`~` and a
    /// login name, up to a `/` or the end of the word) and says whether
    /// there was one.
    fn tilde_prefix(&mut self) -> bool {
        let rest = &self.input[self.at + 1..];
        let name = rest
            .iter()
            .take_while(|&&b| b.is_ascii_alphanumeric() || b"._-+".contains(&b))
            .count();
        let ends = match rest.get(name) {
            None => true,
            Some(b) => b"/ \t\n;&|<>()".contains(b),
        };
        if ends {
            self.last_home = rest[..name].to_vec();
            self.at += 1 + name;
        }
        ends
    }

    /// After a `$`: consumes the expansion it starts, if any (true), or
    /// leaves a `$` that stands for itself (false).
    fn dollar(&mut self) -> Result<bool, SyntaxError> {
        match self.peek() {
            Some(b'(') => {
                self.at += 1;
                let start = self.at;
                self.skip_to_close(b'(', b')')?;
                // A case pattern ends with a lone `)`, which the counting
                // above cannot tell from the end: such a request is not
                // modelled, and brings nothing.
                let inner = &self.input[start..self.at];
                if inner
                    .split(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
                    .any(|token| token == b"case")
                {
                    return Err(SyntaxError);
                }
            }
            Some(b'{') => {
                self.at += 1;
                self.skip_to_close(b'{', b'}')?;
            }
            Some(c) if c.is_ascii_alphabetic() || c == b'_' => {
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
                {
                    self.at += 1;
                }
            }
            Some(c) if c.is_ascii_digit() || b"@*#?-$!".contains(&c) => self.at += 1,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// bash's `$'...'`, after its opening quote: the string with its
    /// escapes decoded, as quoted bytes (a NUL ends it, as in bash). Where
    /// it ends is found first, as bash's parser finds it (a backslash
    /// escapes whatever follows); only then is it decoded.
    fn ansi_c_quoted(&mut self, word: &mut Word) -> Result<(), SyntaxError> {
        let start = self.at;
        loop {
            match self.next().ok_or(SyntaxError)? {
                b'\\' => {
                    self.next();
                }
                b'\'' => break,
                _ => {}
            }
        }
        let text = &self.input[start..self.at - 1];
        let decoded = ansi_c_decode(text);
        let kept = decoded.split(|&b| b == 0).next().unwrap_or_default();
        word.extend(kept.iter().map(|&byte| Piece::Byte { byte, quoted: true }));
        Ok(())
    }

    /// Skips to the `close` that matches an `open` just consumed, over
    /// nested pairs, quotes and backslashes.
    fn skip_to_close(&mut self, open: u8, close: u8) -> Result<(), SyntaxError> {
        let mut depth = 1usize;
        while depth > 0 {
            match self.next().ok_or(SyntaxError)? {
                b'\\' => {
                    self.next();
                }
                quote @ (b'\'' | b'"') => self.skip_quoted(quote, quote == b'"')?,
                b if b == open => depth += 1,
                b if b == close => depth -= 1,
                _ => {}
            }
        }
        Ok(())
    }

    /// Skips to the end of a quoted string whose opening quote was consumed;
    /// `escapes` when a backslash escapes what follows it there.
    fn skip_quoted(&mut self, quote: u8, escapes: bool) -> Result<(), SyntaxError> {
        loop {
            match self.next().ok_or(SyntaxError)? {
                b'\\' if escapes => {
                    self.next();
                }
                b if b == quote => return Ok(()),
                _ => {}
            }
        }
    }

    /// Skips to the backquote that ends a command substitution.
    fn backquote(&mut self) -> Result<(), SyntaxError> {
        loop {
            match self.next().ok_or(SyntaxError)? {
                b'\\' => {
                    self.next();
                }
                b'`' => return Ok(()),
                _ => {}
            }
        }
    }
}

/// The escapes of bash's `$'...'` decoded: `\a \b \e \f \n \r \t \v`,
/// `\\ \' \" \?`, octal `\nnn`, `\xHH`, `\uHHHH`, `\UHHHHHHHH`, `\cX`;
/// any other backslash stays as it is.
fn ansi_c_decode(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while let Some(&byte) = text.get(i) {
        i += 1;
        if byte != b'\\' {
            out.push(byte);
            continue;
        }
        let Some(&escape) = text.get(i) else {
            out.push(b'\\');
            break;
        };
        i += 1;
        let simple = match escape {
            b'a' => Some(7),
            b'b' => Some(8),
            b'e' | b'E' => Some(0x1b),
            b'f' => Some(0x0c),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'v' => Some(0x0b),
            b'\\' | b'\'' | b'"' | b'?' => Some(escape),
            _ => None,
        };
        if let Some(byte) = simple {
            out.push(byte);
            continue;
        }
        match escape {
            b'0'..=b'7' => {
                let mut value = u32::from(escape - b'0');
                for _ in 0..2 {
                    match text.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            value = value * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((value & 0xff) as u8);
            }
            b'x' | b'u' | b'U' => {
                let most = match escape {
                    b'x' => 2,
                    b'u' => 4,
                    _ => 8,
                };
                let mut value = 0u32;
                let mut digits = 0;
                while digits < most
                    && let Some(d) = text.get(i).and_then(|&b| char::from(b).to_digit(16))
                {
                    value = value.saturating_mul(16).saturating_add(d);
                    digits += 1;
                    i += 1;
                }
                if digits == 0 {
                    out.extend_from_slice(&[b'\\', escape]);
                } else if escape == b'x' {
                    out.push((value & 0xff) as u8);
                } else {
                    let ch = char::from_u32(value).unwrap_or(char::REPLACEMENT_CHARACTER);
                    out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
                }
            }
            b'c' => match text.get(i) {
                // `\c\\` takes the escaped backslash whole.
                Some(b'\\') if text.get(i + 1) == Some(&b'\\') => {
                    out.push(b'\\' & 0x1f);
                    i += 2;
                }
                Some(&control) => {
                    out.push(control & 0x1f);
                    i += 1;
                }
                None => out.extend_from_slice(b"\\c"),
            },
            other => out.extend_from_slice(&[b'\\', other]),
        }
    }
    out
}

/// The words a request word may become: bash's brace expansion of it
/// (if `expand`, else its widest reading), and the word itself (a shell
/// without brace expansion passes it on).
fn alternatives(word: Word, expand: bool) -> Vec<Word> {
    let expanded = expand.then(|| brace_expand(word.clone())).flatten();
    let mut expanded = expanded.unwrap_or_else(|| vec![braces_as_stars(&word)]);
    if !expanded.contains(&word) {
        expanded.push(word);
    }
    expanded
}

/// A brace group found in a word: `{a,b}` (its commas), a `{x..y}`
/// sequence (its members), or a sequence too long to spell out.
enum Group {
    List(Vec<usize>),
    Sequence(Vec<Vec<u8>>),
    TooLong,
}

/// `None` when the word expands past [`MAX_PATTERNS`], or its expansion
/// past [`MAX_EXPANDED`] pieces in all.
fn brace_expand(word: Word) -> Option<Vec<Word>> {
    let mut done = Vec::new();
    let mut created = word.len();
    let mut todo = vec![word];
    while let Some(word) = todo.pop() {
        let Some((open, close, group)) = find_brace_group(&word) else {
            done.push(word);
            continue;
        };
        let (before, after) = (&word[..open], &word[close + 1..]);
        let join = |middle: &[Piece]| [before, middle, after].concat();
        let pending = todo.len();
        match group {
            Group::List(commas) => {
                let mut bounds = vec![open];
                bounds.extend(commas);
                bounds.push(close);
                for pair in bounds.windows(2) {
                    todo.push(join(&word[pair[0] + 1..pair[1]]));
                }
            }
            Group::Sequence(members) => {
                for member in members {
                    let pieces: Vec<Piece> = member.iter().map(|&b| unquoted(b)).collect();
                    todo.push(join(&pieces));
                }
            }
            Group::TooLong => todo.push(join(&[Piece::Digits])),
        }
        created += todo[pending..].iter().map(Vec::len).sum::<usize>();
        if done.len() + todo.len() > MAX_PATTERNS || created > MAX_EXPANDED {
            return None;
        }
    }
    // Depth first from a stack: the last alternative came out first.
    done.reverse();
    Some(done)
}

/// Every brace group of `word` as `*`: the widest reading, for a word that
/// expands to too many alternatives.
fn braces_as_stars(word: &[Piece]) -> Word {
    let mut word = word.to_vec();
    while let Some((open, close, _)) = find_brace_group(&word) {
        word.splice(open..=close, [unquoted(b'*')]);
    }
    word
}

fn unquoted(byte: u8) -> Piece {
    Piece::Byte {
        byte,
        quoted: false,
    }
}

/// The first unquoted `{...}` that expands: one with a top-level comma, or
/// a sequence. Its open and close positions and what it holds. (Braces are
/// paired first, in one pass, so that no input costs more than a few passes
/// over the word.)
fn find_brace_group(word: &[Piece]) -> Option<(usize, usize, Group)> {
    let special = |i: usize, b: u8| word[i] == unquoted(b);
    let mut close_of: Vec<Option<usize>> = vec![None; word.len()];
    let mut opens = Vec::new();
    for i in 0..word.len() {
        if special(i, b'{') {
            opens.push(i);
        } else if special(i, b'}')
            && let Some(open) = opens.pop()
        {
            close_of[open] = Some(i);
        }
    }
    for open in 0..word.len() {
        let Some(close) = close_of[open] else {
            continue;
        };
        let mut commas = Vec::new();
        let mut i = open + 1;
        while i < close {
            match close_of[i] {
                // A nested group: its commas are its own.
                Some(inner_close) => i = inner_close + 1,
                None => {
                    if special(i, b',') {
                        commas.push(i);
                    }
                    i += 1;
                }
            }
        }
        if !commas.is_empty() {
            return Some((open, close, Group::List(commas)));
        }
        if let Some(group) = sequence(&word[open + 1..close]) {
            return Some((open, close, group));
        }
    }
    None
}

/// bash's `{x..y[..step]}`: integers (zero-padded when an end is) or
/// single characters.
fn sequence(inner: &[Piece]) -> Option<Group> {
    // The longest is two 20-digit numbers and a step: anything longer is
    // no sequence (and is not worth collecting, nested groups being many).
    if inner.len() > 64 {
        return None;
    }
    let text: Vec<u8> = inner
        .iter()
        .map(|p| match p {
            Piece::Byte {
                byte,
                quoted: false,
            } => Some(*byte),
            _ => None,
        })
        .collect::<Option<_>>()?;
    let text = std::str::from_utf8(&text).ok()?;
    let parts: Vec<&str> = text.split("..").collect();
    let (first, last, step) = match parts[..] {
        [first, last] => (first, last, None),
        [first, last, step] => (first, last, Some(step)),
        _ => return None,
    };
    let step: u64 = match step {
        Some(step) => step.parse::<i64>().ok()?.unsigned_abs().max(1),
        None => 1,
    };
    let members: Vec<Vec<u8>> = if let (Ok(a), Ok(b)) = (first.parse::<i64>(), last.parse::<i64>())
    {
        let count = (a.abs_diff(b) / step).saturating_add(1);
        if count > MAX_PATTERNS as u64 {
            return Some(Group::TooLong);
        }
        let padded = |s: &str| {
            s.trim_start_matches('-').len() > 1 && s.trim_start_matches('-').starts_with('0')
        };
        let width = if padded(first) || padded(last) {
            first.len().max(last.len())
        } else {
            0
        };
        (0..count)
            .map(|k| {
                let offset = i128::from(k) * i128::from(step);
                let n = if a <= b {
                    i128::from(a) + offset
                } else {
                    i128::from(a) - offset
                };
                let digits = n.unsigned_abs().to_string();
                let sign = if n < 0 { "-" } else { "" };
                let pad = width.saturating_sub(sign.len() + digits.len());
                format!("{sign}{}{digits}", "0".repeat(pad)).into_bytes()
            })
            .collect()
    } else if let ([a], [b]) = (first.as_bytes(), last.as_bytes())
        && a.is_ascii_alphabetic()
        && b.is_ascii_alphabetic()
    {
        let (a, b) = (u64::from(*a), u64::from(*b));
        let count = a.abs_diff(b) / step + 1;
        (0..count)
            .filter_map(|k| {
                let n = if a <= b { a + k * step } else { a - k * step };
                u8::try_from(n).ok().map(|c| vec![c])
            })
            .collect()
    } else {
        return None;
    };
    Some(Group::Sequence(members))
}

/// What follows the last `/`, once trailing slashes are dropped.
fn last_component(word: &[Piece]) -> &[Piece] {
    let slash = |p: &Piece| matches!(p, Piece::Byte { byte: b'/', .. });
    let end = word.iter().rposition(|p| !slash(p)).map_or(0, |i| i + 1);
    let trimmed = &word[..end];
    let start = trimmed.iter().rposition(slash).map_or(0, |i| i + 1);
    &trimmed[start..]
}

/// The pattern a requested last component stands for; `None` for one that
/// no name can match (`/` asks for a name the sink must refuse).
fn pattern_for(component: &[Piece]) -> Option<Pattern> {
    if component.is_empty() {
        return None;
    }
    if component.contains(&Piece::Expansion { quoted: false }) {
        return Some(Pattern::Any);
    }
    if component == [Piece::Home] {
        return Some(Pattern::AnyDirectory);
    }
    let tokens = compile(&syms(component));
    // Only a component that is all text has a literal reading.
    let literal: Option<Vec<u8>> = component
        .iter()
        .map(|p| match p {
            Piece::Byte { byte, .. } => Some(*byte),
            _ => None,
        })
        .collect();
    if let Some(literal) = &literal
        && (literal == b"." || literal == b"..")
    {
        return Some(Pattern::AnyDirectory);
    }
    Some(Pattern::Glob { tokens, literal })
}

/// The symbols of `pieces`: their bytes as characters, each marked quoted
/// if its first byte was, and a symbol of its own for what a quoted
/// expansion or a long sequence stands for.
fn syms(pieces: &[Piece]) -> Vec<Sym> {
    let mut out = Vec::with_capacity(pieces.len());
    let mut run: Vec<(u8, bool)> = Vec::new();
    for piece in pieces {
        let special = match piece {
            Piece::Byte { byte, quoted } => {
                run.push((*byte, *quoted));
                continue;
            }
            Piece::Expansion { .. } => Symbol::Expansion,
            Piece::Digits => Symbol::Digits,
            Piece::Home => continue,
        };
        decode_run(&run, &mut out);
        run.clear();
        out.push(Sym {
            symbol: special,
            quoted: false,
        });
    }
    decode_run(&run, &mut out);
    out
}

/// Bytes (with their quoting) as symbols: characters where they are UTF-8.
fn decode_run(run: &[(u8, bool)], out: &mut Vec<Sym>) {
    let bytes: Vec<u8> = run.iter().map(|&(b, _)| b).collect();
    let mut at = 0;
    for chunk in bytes.utf8_chunks() {
        for ch in chunk.valid().chars() {
            out.push(Sym {
                symbol: Symbol::Char(ch),
                quoted: run[at].1,
            });
            at += ch.len_utf8();
        }
        for &byte in chunk.invalid() {
            out.push(Sym {
                symbol: Symbol::Byte(byte),
                quoted: run[at].1,
            });
            at += 1;
        }
    }
}

fn symbols(bytes: &[u8]) -> Vec<Symbol> {
    let mut out = Vec::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.extend(chunk.valid().chars().map(Symbol::Char));
        out.extend(chunk.invalid().iter().map(|&b| Symbol::Byte(b)));
    }
    out
}

/// Glob tokens: unquoted `*`, `?` and `[...]` are special, all else literal.
fn compile(component: &[Sym]) -> Vec<Token> {
    // Where the next `:]` starts, from each position: named classes are
    // found without a search per `[:`.
    let special = |i: usize, c: char| {
        component
            .get(i)
            .is_some_and(|s| !s.quoted && s.symbol == Symbol::Char(c))
    };
    let mut colon_close = vec![None; component.len() + 1];
    let mut close = vec![None; component.len() + 1];
    for i in (0..component.len()).rev() {
        colon_close[i] = if special(i, ':') && special(i + 1, ']') {
            Some(i)
        } else {
            colon_close[i + 1]
        };
        close[i] = if special(i, ']') {
            Some(i)
        } else {
            close[i + 1]
        };
    }
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(s) = component.get(i) {
        i += 1;
        if s.quoted {
            tokens.push(Token::Literal(s.symbol));
            continue;
        }
        match s.symbol {
            Symbol::Digits => tokens.push(Token::Digits),
            // Stars in a row are one star: the first decides whether a
            // leading dot may match (`*"$x"` cannot bring one).
            Symbol::Expansion | Symbol::Char('*') => {
                if !matches!(tokens.last(), Some(Token::AnyString | Token::AnyText)) {
                    tokens.push(if s.symbol == Symbol::Expansion {
                        Token::AnyText
                    } else {
                        Token::AnyString
                    });
                }
            }
            Symbol::Char('?') => tokens.push(Token::AnySymbol),
            // Without a `]` after its first member, it is no class.
            Symbol::Char('[') if close.get(i + 1).copied().flatten().is_none() => {
                tokens.push(Token::Literal(s.symbol));
            }
            Symbol::Char('[') => match parse_class(component, i, &colon_close) {
                Some((class, next)) => {
                    tokens.push(Token::Class(class));
                    i = next;
                }
                None => tokens.push(Token::Literal(s.symbol)),
            },
            symbol => tokens.push(Token::Literal(symbol)),
        }
    }
    tokens
}

/// Parses a bracket expression starting after its `[`; returns it and the
/// position after its `]`, or `None` when it is not closed (then the `[`
/// is an ordinary character, as in the shell).
fn parse_class(
    component: &[Sym],
    start: usize,
    colon_close: &[Option<usize>],
) -> Option<(Class, usize)> {
    let special = |i: usize, c: char| {
        component
            .get(i)
            .is_some_and(|s| !s.quoted && s.symbol == Symbol::Char(c))
    };
    let mut i = start;
    let negated = special(i, '!') || special(i, '^');
    if negated {
        i += 1;
    }
    let mut items = Vec::new();
    let mut first = true;
    // A longer one is taken as written, its `[` as itself: no real class is
    // so long, and every `[` of a component may start a search.
    let limit = (start + MAX_CLASS).min(component.len());
    while let Some(s) = component[..limit].get(i) {
        if !first && special(i, ']') {
            return Some((Class { negated, items }, i + 1));
        }
        first = false;
        if special(i, '[') && special(i + 1, ':') {
            let end = colon_close
                .get(i + 2)
                .copied()
                .flatten()
                .filter(|&k| k + 1 < limit);
            if let Some(end) = end {
                let name: String = component[i + 2..end]
                    .iter()
                    .map(|s| match s.symbol {
                        Symbol::Char(c) => c,
                        Symbol::Byte(_) | Symbol::Digits | Symbol::Expansion => {
                            char::REPLACEMENT_CHARACTER
                        }
                    })
                    .collect();
                items.push(ClassItem::Named(name));
                i = end + 2;
                continue;
            }
        }
        if let (Symbol::Char(lo), Some(dash), Some(hi)) =
            (s.symbol, component.get(i + 1), component.get(i + 2))
            && dash.symbol == Symbol::Char('-')
            && !special(i + 2, ']')
            && let Symbol::Char(hi) = hi.symbol
        {
            items.push(ClassItem::Range(lo, hi));
            i += 3;
            continue;
        }
        items.push(ClassItem::One(s.symbol));
        i += 1;
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
/// by a literal `.` (or by text an expansion produced). The tokens run as
/// an automaton over the name, only its live states kept: time in live
/// states times symbols, whatever the stars (no backtracking).
fn glob_match(tokens: &[Token], name: &[Symbol], budget: &mut usize) -> bool {
    if name.first() == Some(&Symbol::Char('.'))
        && !matches!(
            tokens.first(),
            Some(Token::Literal(Symbol::Char('.')) | Token::AnyText)
        )
    {
        return false;
    }
    let end = tokens.len();
    let is_star = |i: usize| matches!(tokens.get(i), Some(Token::AnyString | Token::AnyText));
    // Which step last added each state, so that none is added twice.
    let mut added = vec![usize::MAX; end + 1];
    let mut add = |states: &mut Vec<usize>, i: usize, step: usize| {
        if added[i] != step {
            added[i] = step;
            states.push(i);
        }
    };
    // Stars match nothing too: a state at one also stands past it.
    let close = |states: &mut Vec<usize>, add: &mut dyn FnMut(&mut Vec<usize>, usize)| {
        let mut k = 0;
        while k < states.len() {
            let i = states[k];
            if is_star(i) {
                add(states, i + 1);
            }
            k += 1;
        }
    };
    let mut live = Vec::new();
    add(&mut live, 0, 0);
    close(&mut live, &mut |states, i| add(states, i, 0));
    for (at, &symbol) in name.iter().enumerate() {
        let step = at + 1;
        match budget.checked_sub(live.len()) {
            Some(left) => *budget = left,
            None => return false,
        }
        let mut next = Vec::with_capacity(live.len());
        for &i in &live {
            let Some(token) = tokens.get(i) else {
                continue;
            };
            match token {
                Token::AnyString | Token::AnyText => add(&mut next, i, step),
                Token::Digits => {
                    if matches!(symbol, Symbol::Char(c) if c.is_ascii_digit() || c == '-') {
                        add(&mut next, i, step);
                        add(&mut next, i + 1, step);
                    }
                }
                Token::Literal(s) if *s == symbol => add(&mut next, i + 1, step),
                Token::AnySymbol => add(&mut next, i + 1, step),
                Token::Class(class) if class.matches(symbol) => add(&mut next, i + 1, step),
                Token::Literal(_) | Token::Class(_) => {}
            }
        }
        close(&mut next, &mut |states, i| add(states, i, step));
        if next.is_empty() {
            return false;
        }
        live = next;
    }
    live.contains(&end)
}

/// A remote path read as the remote shell would read it, for SFTP mode,
/// where no shell reads it: quotes and backslashes removed, braces
/// expanded, each component a literal name or a glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellPath {
    /// A tilde prefix: `Some(b"")` for `~`, `Some(name)` for `~name`.
    pub home: Option<Vec<u8>>,
    /// It starts with `/`.
    pub absolute: bool,
    pub components: Vec<Component>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Component {
    Literal(Vec<u8>),
    Glob(Glob),
}

/// One component's glob (`*`, `?`, `[...]` unquoted), and its text as
/// written, which is what the path means when the glob matches nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    tokens: Vec<Token>,
    pub text: Vec<u8>,
}

impl Glob {
    /// Whether `name` matches, as the shell's glob decides (a leading `.`
    /// only where the pattern spells it).
    pub fn matches(&self, name: &[u8]) -> bool {
        let mut budget = MAX_MATCH_STEPS;
        glob_match(&self.tokens, &symbols(name), &mut budget)
    }
}

/// What SFTP mode refuses: words whose meaning only a remote shell knows.
pub const NEEDS_SHELL: &str = "needs a remote shell: use -O";

/// Reads `request` (the remote path as typed) into the paths a remote
/// shell would have passed to scp. `Err` with why for what only a shell
/// can evaluate (`$VAR`, backticks, `;`, `|`, redirections), for an
/// unclosed quote, and for a brace expansion past rscp's budget.
pub fn read_for_sftp(request: &[u8]) -> Result<Vec<ShellPath>, String> {
    let mut lexer = Lexer {
        input: request,
        at: 0,
        bash: false,
        homes: Vec::new(),
        last_home: Vec::new(),
    };
    let words = lexer
        .words()
        .map_err(|SyntaxError| "unmatched quote".to_owned())?;
    if lexer.at < request.len() {
        return Err(NEEDS_SHELL.into());
    }
    if words.is_empty() {
        // `host:` asks for the login directory.
        return Ok(vec![ShellPath {
            home: None,
            absolute: false,
            components: Vec::new(),
        }]);
    }
    let mut paths = Vec::new();
    for (index, word) in words.into_iter().enumerate() {
        let needs_shell = word.iter().any(|piece| {
            matches!(
                piece,
                Piece::Expansion { .. }
                    | Piece::Byte {
                        byte: b'$' | b'`',
                        quoted: false
                    }
            )
        });
        if needs_shell {
            return Err(NEEDS_SHELL.into());
        }
        let home = lexer
            .homes
            .iter()
            .find(|(at, _)| *at == index)
            .map(|(_, name)| name.clone());
        // A sequence too long to spell out is refused, not guessed at.
        let expanded = brace_expand(word)
            .filter(|words| !words.iter().flatten().any(|p| *p == Piece::Digits))
            .ok_or_else(|| "brace expansion too large".to_owned())?;
        for alternative in expanded {
            paths.push(shell_path(&alternative, home.clone()));
        }
    }
    Ok(paths)
}

fn shell_path(word: &[Piece], home: Option<Vec<u8>>) -> ShellPath {
    let slash = |p: &Piece| matches!(p, Piece::Byte { byte: b'/', .. });
    let (word, home): (&[Piece], Option<Vec<u8>>) = match word.first() {
        Some(Piece::Home) => (&word[1..], home),
        // A tilde that brace expansion put first (`{~,x}/f`): the shell
        // expands it after the braces.
        Some(Piece::Byte {
            byte: b'~',
            quoted: false,
        }) if home.is_none() => {
            let name_len = word[1..]
                .iter()
                .take_while(|p| {
                    matches!(p, Piece::Byte { byte, quoted: false }
                        if byte.is_ascii_alphanumeric() || b"._-+".contains(byte))
                })
                .count();
            match word.get(1 + name_len) {
                None | Some(Piece::Byte { byte: b'/', .. }) => {
                    let name = word[1..1 + name_len]
                        .iter()
                        .filter_map(|p| match p {
                            Piece::Byte { byte, .. } => Some(*byte),
                            _ => None,
                        })
                        .collect();
                    (&word[1 + name_len..], Some(name))
                }
                _ => (word, None),
            }
        }
        _ => (word, home),
    };
    let absolute = home.is_none() && word.first().is_some_and(slash);
    let components = word
        .split(slash)
        .filter(|c| !c.is_empty())
        .map(|component| {
            let text: Vec<u8> = component
                .iter()
                .filter_map(|p| match p {
                    Piece::Byte { byte, .. } => Some(*byte),
                    _ => None,
                })
                .collect();
            let tokens = compile(&syms(component));
            let globbing = tokens.iter().any(|t| !matches!(t, Token::Literal(_)));
            if globbing {
                Component::Glob(Glob { tokens, text })
            } else {
                Component::Literal(text)
            }
        })
        .collect();
    ShellPath {
        home,
        absolute,
        components,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(request: &str, name: &str) -> bool {
        NameFilter::for_request(request.as_bytes()).allows(name.as_bytes(), false)
    }

    fn allows_directory(request: &str, name: &str) -> bool {
        NameFilter::for_request(request.as_bytes()).allows(name.as_bytes(), true)
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
    fn a_glob_that_matches_nothing_arrives_as_written() {
        // The shell leaves an unmatched word unchanged.
        assert!(allows("/x/copy.glob[123]", "copy.glob[123]"));
        assert!(allows("/x/copy.glob[123]", "copy.glob2"));
        assert!(!allows("/x/copy.glob[123]", "copy.glob4"));
        assert!(allows("/x/what?", "what?"));
        assert!(allows("/x/'a b'*", "a b*"));
    }

    #[test]
    fn multibyte_characters_in_classes() {
        assert!(allows("/x/[[:é:]]", "z"), "an unknown class allows");
        assert!(allows("/x/[[:éé:]]", "z"));
        assert!(allows("/x/[[:éé:]", "[[:éé:]"));
        assert!(allows("/x/[é-ü]", "ö"));
        assert!(!allows("/x/[é-ü]", "a"));
        assert!(allows("/x/[[:alpha:]é]", "é"));
        assert!(allows("/x/[[:ab\u{2713}", "[[:ab\u{2713}"));
        let filter = NameFilter::for_request(b"/x/[[:\xe9:]]");
        assert!(filter.allows(b"q", false));
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
        assert!(allows("/x/{a,b}", "{a,b}"), "a shell without braces");
        assert!(allows("/x/{a,b}{1,2}", "b2"));
        assert!(allows("/x/pre{a,{b,c}}post", "precpost"));
        assert!(allows("{/x/a,/y/b}", "b"));
        assert!(allows("/x/{a}", "{a}"));
        assert!(allows("/x/{,b}c", "c"));
    }

    #[test]
    fn sequences_expand_as_bash_does() {
        assert!(allows("/x/f{1..3}", "f2"));
        assert!(!allows("/x/f{1..3}", "f4"));
        assert!(allows("/x/f{1..3}", "f{1..3}"));
        assert!(allows("/x/f{08..10}", "f09"));
        assert!(!allows("/x/f{08..10}", "f9"));
        assert!(allows("/x/f{5..1..2}", "f3"));
        assert!(!allows("/x/f{5..1..2}", "f2"));
        assert!(allows("/x/f{-2..2}", "f-1"));
        assert!(allows("/x/{a..e}.txt", "c.txt"));
        assert!(!allows("/x/{a..e}.txt", "f.txt"));
        assert!(!allows("/x/{a..e}.txt", ".bashrc"));
        // Too long to spell out: any digits, still never a hidden file.
        assert!(allows("/x/f{1..100000}", "f777"));
        assert!(!allows("/x/f{1..100000}", "g777"));
        assert!(!allows("/x/{1..100000}", ".bashrc"));
        assert!(!allows("/x/{1..9223372036854775807..1}", ".bashrc"));
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
        assert!(!allows("'unclosed", "unclosed"));
    }

    #[test]
    fn blanks_separate_requests() {
        assert!(allows("/x/a /y/b", "a"));
        assert!(allows("/x/a /y/b", "b"));
        assert!(!allows("/x/a /y/b", "c"));
    }

    #[test]
    fn only_the_last_component_decides() {
        // The shell knows $HOME; the name is still notes.txt.
        assert!(allows("$HOME/notes.txt", "notes.txt"));
        assert!(!allows("$HOME/notes.txt", ".bashrc"));
        assert!(!allows("`pwd`/notes.txt", ".bashrc"));
        assert!(!allows("$(pwd)/notes.txt", ".bashrc"));
        assert!(!allows("${HOME}/n", ".bashrc"));
        assert!(!allows("\"$HOME\"/n", ".bashrc"));
        assert!(allows("~user/n", "n"));
        assert!(!allows("~user/n", "user"));
    }

    #[test]
    fn an_expansion_in_the_last_component_widens_that_component() {
        assert!(allows("/x/$NAME", "anything"));
        assert!(allows("/x/$NAME", ".bashrc"));
        assert!(allows("/x/`ls`", "anything"));
        assert!(allows("/x/pre$N.txt", "other"), "it may split into words");
        // Quoted, it stays one word: what follows it must match.
        assert!(allows("/x/\"$N\".txt", "a.txt"));
        assert!(allows("/x/\"$N\".txt", ".a.txt"));
        assert!(!allows("/x/\"$N\".txt", ".bashrc"));
        assert!(allows("/x/\"$N\"*.log", "b.1.log"));
        assert!(!allows("/x/\"$N\"*.log", "b.1.txt"));
        // Only that word is open.
        assert!(allows("/x/a $V", "zzz"));
        assert!(!allows("/x/a ~/b", "zzz"));
    }

    #[test]
    fn shell_syntax_ends_the_requested_paths() {
        for request in [
            "a; echo b",
            "a;b",
            "a|b",
            "a && b",
            "a >b",
            "a <b",
            "a (b)",
            "a\nb",
            "a #b",
        ] {
            assert!(allows(request, "a"), "{request:?}");
            assert!(!allows(request, "b"), "{request:?}");
        }
        assert!(!allows("(a)", "a"));
        assert!(allows("'a;b'", "a;b"));
        assert!(allows("a\\;b", "a;b"));
    }

    #[test]
    fn directories_named_by_the_remote_side_bring_no_file() {
        for request in [
            ".",
            "..",
            "/srv/data/..",
            "dir/.",
            "~",
            "~/",
            "~user",
            "~user/",
        ] {
            assert!(!allows(request, "alice"), "{request:?}");
            assert!(!allows(request, ".bashrc"), "{request:?}");
            assert!(allows_directory(request, "alice"), "{request:?}");
        }
        assert!(!allows("/", "x"));
        assert!(!allows_directory("/", "x"));
        assert!(!allows("", "x"));
    }

    #[test]
    fn non_utf8_names() {
        let filter = NameFilter::for_request(b"/x/caf\xe9");
        assert!(filter.allows(b"caf\xe9", false));
        assert!(!filter.allows(b"cafe", false));
        assert!(NameFilter::for_request(b"/x/caf?").allows(b"caf\xe9", false));
    }

    #[test]
    fn bash_ansi_c_and_locale_quoting_are_read_both_ways() {
        // What `ls` and `printf %q` print for a name with a tab.
        let request = "'a'$'\\t''b.txt'";
        assert!(allows(request, "a\tb.txt"), "bash");
        assert!(allows(request, "a$\\tb.txt"), "a POSIX shell");
        assert!(!allows(request, ".bashrc"));
        assert!(!allows_directory(request, ".ssh"));
        assert!(allows("$'caf\\xc3\\xa9'", "café"));
        assert!(allows("$'\\u00e9t\\303\\251'", "été"));
        assert!(allows("$'a\\'b'", "a'b"));
        assert!(allows("$'a\\0b'", "a"), "bash stops at a NUL");
        assert!(allows("/x/$\"abc\"", "abc"));
        assert!(allows("/x/$\"abc\"", "$abc"));
        assert!(!allows("/x/$\"abc\"", ".bashrc"));
        assert!(!allows("$'unclosed", "unclosed"));
    }

    #[test]
    fn character_sequences_need_letters_at_both_ends() {
        assert!(allows("/x/x{*..*}y", "x{*..*}y"));
        assert!(!allows("/x/x{*..*}y", "xEVILy"));
        assert!(!allows("/x/{-../}bashrc", ".bashrc"));
        assert!(!allows_directory("/x/{-../}", "anything"));
        assert!(!allows("/x/{a..5}", "?"));
        assert!(allows("/x/{Z..a}", "_"), "bash spans what lies between");
    }

    #[test]
    fn a_long_sequence_stands_for_digits_only() {
        assert!(allows("/x/{1..2000}", "1999"));
        assert!(!allows("/x/{1..2000}", "evil"));
        assert!(!allows("/x/f{1..2000}", "fstab"));
        assert!(allows("/x/f{1..2000}.log", "f17.log"));
        assert!(!allows("/x/f{1..2000}.log", "f.log"));
        assert!(!allows("/x/f{1..2000}", "f"));
    }

    #[test]
    fn a_remote_directory_name_is_never_hidden() {
        for request in [".", "~", "dir/..", "~user"] {
            assert!(!allows_directory(request, ".ssh"), "{request:?}");
            assert!(allows_directory(request, "alice"), "{request:?}");
        }
    }

    #[test]
    fn a_huge_request_costs_bounded_memory() {
        let long = "x".repeat(100_000);
        let request = format!("/x/{}{long}", "{a,b}".repeat(10));
        let filter = NameFilter::for_request(request.as_bytes());
        let tokens: usize = filter
            .patterns
            .iter()
            .map(|p| match p {
                Pattern::Glob { tokens, .. } => tokens.len(),
                _ => 1,
            })
            .sum();
        assert!(tokens < 4 * MAX_EXPANDED, "{tokens} tokens");
        // A name as long as a record allows, against such a pattern.
        let tail = &long[..2000];
        let filter = NameFilter::for_request(format!("/x/{}{tail}", "{a,b}".repeat(10)).as_bytes());
        assert!(filter.allows(format!("ab{}{tail}", "a".repeat(8)).as_bytes(), false));
        assert!(!filter.allows(format!("ab{}{tail}y", "a".repeat(8)).as_bytes(), false));
        let many = format!("{} ", "{a,b}".repeat(10)).repeat(2000);
        assert!(NameFilter::for_request(many.as_bytes()).allows(b"abababababa", false));
    }

    #[test]
    fn a_quoted_expansion_keeps_the_text_around_it() {
        assert!(allows("/x/\"a$N\"", "abc"));
        assert!(!allows("/x/\"a$N\"", ".bashrc"));
        assert!(!allows("logs/app-\"$(date +%F)\"", ".bashrc"));
        assert!(allows("logs/app-\"$(date +%F)\"", "app-2026-12-01"));
        assert!(allows("logs/app-\"$(date +%F)\".log", "app-1.log"));
        assert!(!allows("logs/app-\"$(date +%F)\".log", "app-1.txt"));
        assert!(!allows("/x/*\"$x\"", ".b"), "the star comes first");
        assert!(allows("/x/\"$x\"*", ".b"));
    }

    #[test]
    fn bash_strings_end_where_bash_ends_them() {
        // bash: one word, `\c .bashrc '`.
        let request = "$'\\c'' .bashrc '\\'";
        assert!(!allows(request, ".bashrc"));
        assert!(allows(request, "\\c .bashrc '"));
        assert!(allows("$'\\c\\\\x'", "\u{1c}x"));
        assert!(allows("$'a\\c'", "a\\c"));
        // A case pattern's `)` is not the end of $(...): not modelled.
        let request = "\"$(case a in a) \" .bashrc \"x;; esac)\"y";
        assert!(!allows(request, ".bashrc"));
        assert!(!allows(request, "y"));
    }

    #[test]
    fn pathological_requests_cost_little() {
        let started = std::time::Instant::now();
        let classes = format!("{}{{1..1000}}", "[[:".repeat(330));
        let filter = NameFilter::for_request(classes.as_bytes());
        assert!(filter.allows(format!("{}7", "[[:".repeat(330)).as_bytes(), false));
        let nested = format!("{}{}", "{".repeat(60_000), "}".repeat(60_000));
        let _ = NameFilter::for_request(nested.as_bytes());
        let stars = format!("{}{{1..400}}", "*a".repeat(1200));
        let filter = NameFilter::for_request(stars.as_bytes());
        let _ = filter.allows(&[b'a'; 2047], false);
        let words: String = (0..20_000).map(|i| format!("$x{i} ")).collect();
        let _ = NameFilter::for_request(words.as_bytes());
        // Not a speed: each of these took from seconds to minutes.
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }

    #[test]
    fn explosive_braces_widen_without_giving_up() {
        let request = "{a,b}".repeat(12);
        assert!(allows(&request, "zzz"));
        assert!(!allows(&request, ".bashrc"));
    }

    /// (home, absolute, components), globs marked.
    type Read = (Option<Vec<u8>>, bool, Vec<Vec<u8>>);

    fn literal_paths(request: &[u8]) -> Vec<Read> {
        read_for_sftp(request)
            .unwrap()
            .into_iter()
            .map(|p| {
                let parts = p
                    .components
                    .iter()
                    .map(|c| match c {
                        Component::Literal(text) => text.clone(),
                        Component::Glob(glob) => [b"glob:".as_slice(), &glob.text].concat(),
                    })
                    .collect();
                (p.home, p.absolute, parts)
            })
            .collect()
    }

    #[test]
    fn sftp_mode_reads_paths_as_the_remote_shell_would() {
        let v = |s: &str| s.as_bytes().to_vec();
        assert_eq!(
            literal_paths(b"/a//b/"),
            vec![(None, true, vec![v("a"), v("b")])]
        );
        assert_eq!(
            literal_paths(b"'a b' c\\ d"),
            vec![(None, false, vec![v("a b")]), (None, false, vec![v("c d")])]
        );
        assert_eq!(
            literal_paths(b"~/x"),
            vec![(Some(vec![]), false, vec![v("x")])]
        );
        assert_eq!(
            literal_paths(b"~bob"),
            vec![(Some(v("bob")), false, vec![])]
        );
        assert_eq!(
            literal_paths(b"{~,x}/f"),
            vec![
                (Some(vec![]), false, vec![v("f")]),
                (None, false, vec![v("x"), v("f")])
            ]
        );
        assert_eq!(
            literal_paths(b"'~'/f"),
            vec![(None, false, vec![v("~"), v("f")])]
        );
        assert_eq!(literal_paths(b""), vec![(None, false, vec![])]);
        assert_eq!(
            literal_paths(b"d/{a,b}.txt"),
            vec![
                (None, false, vec![v("d"), v("a.txt")]),
                (None, false, vec![v("d"), v("b.txt")])
            ]
        );
        assert_eq!(
            literal_paths(b"d/*.txt 'q*'"),
            vec![
                (None, false, vec![v("d"), v("glob:*.txt")]),
                (None, false, vec![v("q*")])
            ]
        );
        for shell_only in [&b"$HOME/x"[..], b"`id`", b"a;b", b"a|b", b"a>b", b"\"$X\""] {
            assert_eq!(read_for_sftp(shell_only), Err(NEEDS_SHELL.to_owned()));
        }
        assert!(read_for_sftp(b"'open").is_err());
        assert_eq!(
            read_for_sftp(b"f{1..2000}"),
            Err("brace expansion too large".to_owned())
        );
        let Component::Glob(glob) = &read_for_sftp(b"*.txt").unwrap()[0].components[0] else {
            panic!("not a glob");
        };
        assert!(glob.matches(b"a.txt"));
        assert!(!glob.matches(b".a.txt"));
        assert!(!glob.matches(b"a.txt2"));
    }
}
