//! Text that is safe to show on a terminal.
//!
//! Names and messages come from the network and the disk; printed raw, an
//! escape sequence in them could rewrite the user's screen. Like OpenSSH's
//! `vis`, every control character becomes a `\ooo` octal escape.

/// Renders `bytes` for a terminal: printable UTF-8 and tabs as they are;
/// C0 controls, DEL, C1 controls, line and paragraph separators, bidi
/// overrides, isolates and marks (which reorder what follows them on the
/// screen), and every byte of invalid UTF-8 as `\ooo`.
pub fn for_terminal(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for ch in chunk.valid().chars() {
            if ch == '\t' || !(ch.is_control() || reorders(ch)) {
                out.push(ch);
            } else {
                let mut utf8 = [0u8; 4];
                for byte in ch.encode_utf8(&mut utf8).bytes() {
                    push_octal(&mut out, byte);
                }
            }
        }
        for &byte in chunk.invalid() {
            push_octal(&mut out, byte);
        }
    }
    out
}

/// A path for a message: its bytes, escaped as [`for_terminal`] does.
pub fn path_for_terminal(path: &std::path::Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    for_terminal(path.as_os_str().as_bytes())
}

/// Characters that move text around on the screen without being seen.
fn reorders(ch: char) -> bool {
    matches!(
        ch,
        '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

fn push_octal(out: &mut String, byte: u8) {
    out.push('\\');
    out.push(char::from(b'0' + (byte >> 6)));
    out.push(char::from(b'0' + ((byte >> 3) & 7)));
    out.push(char::from(b'0' + (byte & 7)));
}

/// An I/O error as `strerror` words it ("No such file or directory"),
/// without Rust's " (os error N)" suffix, so messages read like scp's.
pub fn io_reason(error: &std::io::Error) -> String {
    let text = error.to_string();
    match error.raw_os_error() {
        Some(code) => text
            .strip_suffix(&format!(" (os error {code})"))
            .map(str::to_owned)
            .unwrap_or(text),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_text_is_unchanged() {
        assert_eq!(for_terminal("plain name.txt".as_bytes()), "plain name.txt");
        assert_eq!(for_terminal("été\tß".as_bytes()), "été\tß");
    }

    #[test]
    fn controls_become_octal() {
        assert_eq!(for_terminal(b"\x1b[31mred\n"), "\\033[31mred\\012");
        assert_eq!(for_terminal(b"a\x7fb\x00"), "a\\177b\\000");
        // U+009B is a one-character CSI on some terminals.
        assert_eq!(for_terminal("x\u{9b}2J".as_bytes()), "x\\302\\2332J");
        // A right-to-left override turns `exe.txt` into what looks like
        // `txt.exe`; a line separator breaks a line.
        assert_eq!(for_terminal("a\u{202e}b".as_bytes()), "a\\342\\200\\256b");
        assert_eq!(for_terminal("a\u{2028}b".as_bytes()), "a\\342\\200\\250b");
        assert_eq!(for_terminal("\u{2067}x".as_bytes()), "\\342\\201\\247x");
        assert_eq!(for_terminal("\u{2013}".as_bytes()), "\u{2013}");
    }

    #[test]
    fn invalid_utf8_becomes_octal() {
        assert_eq!(for_terminal(b"a\xff\xfeb"), "a\\377\\376b");
    }

    #[test]
    fn io_reason_drops_the_os_error_suffix() {
        let error = std::io::Error::from_raw_os_error(2);
        assert_eq!(io_reason(&error), "No such file or directory");
        let custom = std::io::Error::other("custom");
        assert_eq!(io_reason(&custom), "custom");
    }
}
