//! Remote paths as bytes: joining, the last component, and which names a
//! server may send for an entry of a directory.

/// `directory/name`; an empty directory is the login directory, where
/// relative names start.
pub fn join(directory: &[u8], name: &[u8]) -> Vec<u8> {
    if directory.is_empty() {
        return name.to_vec();
    }
    let mut path = directory.to_vec();
    if !path.ends_with(b"/") {
        path.push(b'/');
    }
    path.extend_from_slice(name);
    path
}

/// What follows the last `/`, once trailing slashes are dropped.
pub fn last_component(path: &[u8]) -> &[u8] {
    let end = path.iter().rposition(|&b| b != b'/').map_or(0, |i| i + 1);
    let trimmed = &path[..end];
    let start = trimmed
        .iter()
        .rposition(|&b| b == b'/')
        .map_or(0, |i| i + 1);
    &trimmed[start..]
}

/// A name that may become a file in a local directory: not empty, no
/// `/` or NUL, not `.` or `..`.
pub fn is_plain_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_and_last_components() {
        assert_eq!(join(b"", b"a"), b"a");
        assert_eq!(join(b"/", b"a"), b"/a");
        assert_eq!(join(b"d", b"a"), b"d/a");
        assert_eq!(join(b"d/", b"a"), b"d/a");
        assert_eq!(last_component(b"/x/y//"), b"y");
        assert_eq!(last_component(b"y"), b"y");
        assert_eq!(last_component(b"/"), b"");
        assert!(is_plain_name(b"a.b"));
        for bad in [&b""[..], b".", b"..", b"a/b", b"a\0"] {
            assert!(!is_plain_name(bad));
        }
    }
}
