//! Control records: `T`, `C`, `D`, `E`, parsed strictly and formatted.

use crate::escape::for_terminal;

/// Mode bits that travel: setuid, setgid and the permission bits. The
/// sticky bit is never sent (scp's FILEMODEMASK).
pub const MODE_MASK: u32 = 0o6777;

/// Largest size accepted: what a signed 64-bit file offset can hold.
pub const MAX_SIZE: u64 = i64::MAX as u64;

pub use crate::local::receive::Times;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// `T`; `None` when the times are out of range (ignored, as scp does).
    Times(Option<Times>),
    File {
        mode: u32,
        size: u64,
        name: Vec<u8>,
    },
    Directory {
        mode: u32,
        name: Vec<u8>,
    },
    End,
}

/// Parses one control line, given without its newline. The error is the
/// reason for a protocol error, fit to print.
pub fn parse(line: &[u8]) -> Result<Record, String> {
    match line.first() {
        Some(b'T') => parse_times(&line[1..]),
        Some(&kind @ (b'C' | b'D')) => {
            let (mode, size, name) = parse_file_fields(&line[1..])?;
            Ok(if kind == b'C' {
                Record::File { mode, size, name }
            } else {
                Record::Directory { mode, name }
            })
        }
        Some(b'E') if line.len() == 1 => Ok(Record::End),
        _ => Err("expected control record".into()),
    }
}

fn parse_times(fields: &[u8]) -> Result<Record, String> {
    let malformed = || String::from("malformed times record");
    let parts: Vec<&[u8]> = fields.split(|&b| b == b' ').collect();
    let [mtime, mtime_usec, atime, atime_usec] = parts[..] else {
        return Err(malformed());
    };
    let seconds = |s: &[u8]| decimal(s).ok_or_else(malformed);
    let micros = |s: &[u8]| {
        decimal(s)
            .filter(|&us| us <= 999_999)
            .map(|us| us as u32)
            .ok_or_else(malformed)
    };
    let times = Times {
        mtime: seconds(mtime)?,
        mtime_usec: micros(mtime_usec)?,
        atime: seconds(atime)?,
        atime_usec: micros(atime_usec)?,
    };
    let in_range = times.mtime <= i64::MAX as u64 && times.atime <= i64::MAX as u64;
    Ok(Record::Times(in_range.then_some(times)))
}

/// `<4 octal digits> <decimal size> <name>`
fn parse_file_fields(fields: &[u8]) -> Result<(u32, u64, Vec<u8>), String> {
    let mode_digits = fields.get(..4).ok_or("bad mode")?;
    if !mode_digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
        return Err("bad mode".into());
    }
    let mode = mode_digits
        .iter()
        .fold(0u32, |m, d| (m << 3) | u32::from(d - b'0'));
    if fields.get(4) != Some(&b' ') {
        return Err("mode not delimited".into());
    }
    let rest = &fields[5..];
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return Err("size not present".into());
    }
    if rest.get(digits) != Some(&b' ') {
        return Err("size not delimited".into());
    }
    let size = decimal(&rest[..digits])
        .filter(|&s| s <= MAX_SIZE)
        .ok_or("size out of range")?;
    let name = &rest[digits + 1..];
    check_name(name)?;
    Ok((mode, size, name.to_vec()))
}

/// A received name must be one path component that stays where it is put.
pub fn check_name(name: &[u8]) -> Result<(), String> {
    let bad = name.is_empty()
        || name == b"."
        || name == b".."
        || name.contains(&b'/')
        || name.contains(&0);
    if bad {
        Err(format!("unexpected filename: {}", for_terminal(name)))
    } else {
        Ok(())
    }
}

/// Digits only (no sign, no spaces), checked for overflow.
fn decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

pub fn file_line(mode: u32, size: u64, name: &[u8]) -> Vec<u8> {
    let mut line = format!("C{:04o} {} ", mode & MODE_MASK, size).into_bytes();
    push_name(&mut line, name);
    line
}

pub fn directory_line(mode: u32, name: &[u8]) -> Vec<u8> {
    let mut line = format!("D{:04o} 0 ", mode & MODE_MASK).into_bytes();
    push_name(&mut line, name);
    line
}

/// A name and the newline that ends its record. A name with a newline in
/// it cannot go into a line as it is: it goes encoded as OpenSSH's scp
/// encodes it (`strnvis` with `VIS_NL`: `a\^Jb`), never cut.
fn push_name(line: &mut Vec<u8>, name: &[u8]) {
    if name.contains(&b'\n') {
        for &byte in name {
            push_visible(line, byte);
        }
    } else {
        line.extend_from_slice(name);
    }
    line.push(b'\n');
}

/// One byte as OpenBSD's `vis` shows it in its default style, with the
/// newline not visible: graphic ASCII, space and tab as they are (a
/// backslash doubled); others as `\^X`, `\M-x`, `\M^X`, or `\240`.
fn push_visible(out: &mut Vec<u8>, byte: u8) {
    if byte.is_ascii_graphic() || byte == b' ' || byte == b'\t' {
        if byte == b'\\' {
            out.push(b'\\');
        }
        out.push(byte);
        return;
    }
    out.push(b'\\');
    if byte == 0xa0 {
        out.extend_from_slice(b"240");
        return;
    }
    let low = byte & 0x7f;
    if byte & 0x80 != 0 {
        out.push(b'M');
    }
    if low.is_ascii_control() {
        out.push(b'^');
        out.push(if low == 0x7f { b'?' } else { low + b'@' });
    } else {
        out.push(b'-');
        out.push(low);
    }
}

/// Negative times (before 1970) are sent as 0, as scp does.
pub fn times_line(mtime: i64, atime: i64) -> Vec<u8> {
    format!("T{} 0 {} 0\n", mtime.max(0), atime.max(0)).into_bytes()
}

pub const END_LINE: &[u8] = b"E\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_good_records() {
        assert_eq!(
            parse(b"C0644 12 hello.txt"),
            Ok(Record::File {
                mode: 0o644,
                size: 12,
                name: b"hello.txt".to_vec()
            })
        );
        assert_eq!(
            parse(b"C4755 0 with space "),
            Ok(Record::File {
                mode: 0o4755,
                size: 0,
                name: b"with space ".to_vec()
            })
        );
        assert_eq!(
            parse(b"D0755 0 dir"),
            Ok(Record::Directory {
                mode: 0o755,
                name: b"dir".to_vec()
            })
        );
        assert_eq!(parse(b"E"), Ok(Record::End));
        assert_eq!(
            parse(b"T1700000000 0 1700000001 999999"),
            Ok(Record::Times(Some(Times {
                mtime: 1_700_000_000,
                mtime_usec: 0,
                atime: 1_700_000_001,
                atime_usec: 999_999
            })))
        );
        assert_eq!(
            parse(format!("C0600 {} big", i64::MAX).as_bytes()),
            Ok(Record::File {
                mode: 0o600,
                size: MAX_SIZE,
                name: b"big".to_vec()
            })
        );
    }

    #[test]
    fn out_of_range_times_are_ignored_not_fatal() {
        assert_eq!(
            parse(b"T9223372036854775808 0 1 0"),
            Ok(Record::Times(None))
        );
    }

    #[test]
    fn refuses_malformed_records() {
        let cases: &[(&[u8], &str)] = &[
            (b"C644 1 x", "bad mode"),
            (b"C0648 1 x", "bad mode"),
            (b"C06440 1 x", "mode not delimited"),
            (b"C0644  x", "size not present"),
            (b"C0644 -1 x", "size not present"),
            (b"C0644 1x x", "size not delimited"),
            (b"C0644 12", "size not delimited"),
            (b"C0644 9223372036854775808 x", "size out of range"),
            (b"C0644 99999999999999999999999 x", "size out of range"),
            (b"C0644 1 ", "unexpected filename: "),
            (b"C0644 1 .", "unexpected filename: ."),
            (b"C0644 1 ..", "unexpected filename: .."),
            (b"C0644 1 a/b", "unexpected filename: a/b"),
            (b"C0644 1 /etc/passwd", "unexpected filename: /etc/passwd"),
            (b"C0644 1 a\0b", "unexpected filename: a\\000b"),
            (b"D0755 0 ../up", "unexpected filename: ../up"),
            (b"T1 0 1", "malformed times record"),
            (b"T1 0 1 1000000", "malformed times record"),
            (b"T+1 0 1 0", "malformed times record"),
            (b"T1 0 1 0 ", "malformed times record"),
            (b"Ex", "expected control record"),
            (b"X", "expected control record"),
            (b"", "expected control record"),
        ];
        for (line, why) in cases {
            assert_eq!(
                parse(line),
                Err(why.to_string()),
                "line {:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn formats_records_like_scp() {
        assert_eq!(file_line(0o100644, 3, b"a b"), b"C0644 3 a b\n");
        assert_eq!(file_line(0o1777, 0, b"x"), b"C0777 0 x\n");
        assert_eq!(file_line(0o4755, 1, b"s"), b"C4755 1 s\n");
        assert_eq!(directory_line(0o40755, b"d"), b"D0755 0 d\n");
        assert_eq!(times_line(5, -3), b"T5 0 0 0\n");
    }

    #[test]
    fn names_with_a_newline_go_encoded_as_openssh_sends_them() {
        // What OpenSSH 9.2's scp -O made of these names, run here.
        let cases: &[(&[u8], &[u8])] = &[
            (b"a\nb", b"a\\^Jb"),
            (b"x\\y\nz", b"x\\\\y\\^Jz"),
            (b"t\tq\nr", b"t\tq\\^Jr"),
            (b"caf\xe9\nx", b"caf\\M-i\\^Jx"),
            (b"\x01\x7f\x81\xff\xa0 \n", b"\\^A\\^?\\M^A\\M^?\\240 \\^J"),
        ];
        for (name, sent) in cases {
            let mut expected = b"C0644 1 ".to_vec();
            expected.extend_from_slice(sent);
            expected.push(b'\n');
            assert_eq!(file_line(0o644, 1, name), expected);
            assert_eq!(parse(&expected[..expected.len() - 1]).map(|_| ()), Ok(()));
        }
        // Without a newline, a name goes as it is.
        assert_eq!(directory_line(0o755, b"a\\b\xe9"), b"D0755 0 a\\b\xe9\n");
    }
}
