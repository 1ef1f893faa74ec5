//! Walking what is to be sent: one operand, a file or (with `-r`) a
//! directory tree, symlinks followed and loops refused, as scp walks it.
//! The engines drive the walk step by step (a directory is entered only
//! once the peer has accepted it); the pre-count for the total line walks
//! the same way.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, Metadata, ReadDir};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::escape::{io_reason, path_for_terminal as shown};

/// One step of a walk.
pub enum Step {
    /// A regular file, opened for reading.
    File {
        path: PathBuf,
        file: File,
        meta: Metadata,
    },
    /// A directory that can be read; [`Walk::enter`] walks its contents.
    Directory(Directory),
    /// The end of the directory entered last.
    Leave,
    /// A problem with one entry ("path: why"); the walk goes on.
    Problem(String),
}

/// A directory found by the walk, not yet entered.
pub struct Directory {
    pub path: PathBuf,
    pub meta: Metadata,
    entries: Entries,
}

/// A directory's names: read as usual, or (for a look ahead of the walk
/// that sends) without touching its access time, which `-p` sends.
enum Entries {
    Usual(ReadDir),
    Unseen(nix::dir::OwningIter),
}

impl Entries {
    fn open(path: &Path, unseen: bool) -> io::Result<Entries> {
        use nix::fcntl::OFlag;
        if unseen {
            let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOATIME;
            // (Only a directory's owner may read it so; others read it as
            // usual.)
            if let Ok(dir) = nix::dir::Dir::open(path, flags, nix::sys::stat::Mode::empty()) {
                return Ok(Entries::Unseen(dir.into_iter()));
            }
        }
        fs::read_dir(path).map(Entries::Usual)
    }
}

impl Iterator for Entries {
    type Item = io::Result<OsString>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Entries::Usual(entries) => entries.next().map(|e| e.map(|e| e.file_name())),
            Entries::Unseen(entries) => loop {
                let entry = match entries.next()? {
                    Ok(entry) => entry,
                    Err(errno) => return Some(Err(io::Error::from(errno))),
                };
                let name = entry.file_name().to_bytes();
                if name != b"." && name != b".." {
                    return Some(Ok(OsStr::from_bytes(name).to_owned()));
                }
            },
        }
    }
}

impl Directory {
    /// The name it is sent under: the last component, except that `.` and
    /// `..` (which any receiver would refuse) go under the real name of the
    /// directory they stand for.
    pub fn name(&self) -> Vec<u8> {
        let last = last_component(&self.path);
        if last == b"." || last == b".." {
            let real = fs::canonicalize(&self.path).ok();
            if let Some(name) = real.as_deref().and_then(Path::file_name) {
                return name.as_bytes().to_vec();
            }
        }
        last.to_vec()
    }
}

/// A directory being walked.
struct Open {
    path: PathBuf,
    entries: Entries,
    /// (device, inode): a directory already on the walk is a symlink loop.
    identity: (u64, u64),
}

pub struct Walk {
    recursive: bool,
    /// A look ahead: directories read without touching their access time.
    unseen: bool,
    /// The operand itself, until it has been looked at.
    root: Option<PathBuf>,
    open: Vec<Open>,
    /// A directory that failed to read is left after its problem is told.
    leave_next: bool,
}

impl Walk {
    /// A walk of one operand (trailing slashes trimmed, as scp does).
    pub fn new(path: &Path, recursive: bool) -> Walk {
        Walk {
            recursive,
            unseen: false,
            root: Some(trim_trailing_slashes(path)),
            open: Vec::new(),
            leave_next: false,
        }
    }

    /// Walks the contents of `directory` next.
    pub fn enter(&mut self, directory: Directory) {
        self.open.push(Open {
            identity: (directory.meta.dev(), directory.meta.ino()),
            path: directory.path,
            entries: directory.entries,
        });
    }

    /// The next step, or `None` at the end of the walk.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Step> {
        if std::mem::take(&mut self.leave_next) {
            return Some(Step::Leave);
        }
        if let Some(root) = self.root.take() {
            return Some(self.look_at(root));
        }
        let top = self.open.last_mut()?;
        match top.entries.next() {
            Some(Ok(name)) => {
                let child = top.path.join(name);
                Some(self.look_at(child))
            }
            Some(Err(e)) => {
                let message = format!("{}: {}", shown(&top.path), io_reason(&e));
                self.open.pop();
                self.leave_next = true;
                Some(Step::Problem(message))
            }
            None => {
                self.open.pop();
                Some(Step::Leave)
            }
        }
    }

    fn look_at(&self, path: PathBuf) -> Step {
        // Non-blocking so that a FIFO does not hang the open; it is then
        // refused as not a regular file.
        let opened = fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
            .open(&path)
            .and_then(|file| file.metadata().map(|meta| (file, meta)));
        let (file, meta) = match opened {
            Ok(opened) => opened,
            Err(e) => return Step::Problem(format!("{}: {}", shown(&path), io_reason(&e))),
        };
        if meta.is_dir() && self.recursive {
            drop(file);
            if self
                .open
                .iter()
                .any(|d| d.identity == (meta.dev(), meta.ino()))
            {
                return Step::Problem(format!(
                    "{}: directory loop (symbolic link to a parent)",
                    shown(&path)
                ));
            }
            return match Entries::open(&path, self.unseen) {
                Ok(entries) => Step::Directory(Directory {
                    path,
                    meta,
                    entries,
                }),
                Err(e) => Step::Problem(format!("{}: {}", shown(&path), io_reason(&e))),
            };
        }
        if !meta.is_file() {
            return Step::Problem(format!("{}: not a regular file", shown(&path)));
        }
        Step::File { path, file, meta }
    }
}

/// Files and bytes that sending `paths` will move (for the total line),
/// counted by walking them as they will be sent.
pub fn count<'p>(paths: impl Iterator<Item = &'p Path>, recursive: bool) -> (u64, u64) {
    let (mut files, mut bytes) = (0u64, 0u64);
    for path in paths {
        let mut walk = Walk::new(path, recursive);
        walk.unseen = true;
        while let Some(step) = walk.next() {
            match step {
                Step::File { meta, .. } => {
                    files += 1;
                    bytes = bytes.saturating_add(meta.len());
                }
                Step::Directory(directory) => walk.enter(directory),
                Step::Leave | Step::Problem(_) => {}
            }
        }
    }
    (files, bytes)
}

/// Whether `paths` hold at least `most` files (the walk stops there).
pub fn at_least<'p>(paths: impl Iterator<Item = &'p Path>, recursive: bool, most: u64) -> bool {
    let mut files = 0u64;
    for path in paths {
        let mut walk = Walk::new(path, recursive);
        walk.unseen = true;
        while let Some(step) = walk.next() {
            match step {
                Step::File { .. } => {
                    files += 1;
                    if files >= most {
                        return true;
                    }
                }
                Step::Directory(directory) => walk.enter(directory),
                Step::Leave | Step::Problem(_) => {}
            }
        }
    }
    false
}

/// scp strips trailing slashes (but keeps a lone `/`).
fn trim_trailing_slashes(path: &Path) -> PathBuf {
    let bytes = path.as_os_str().as_bytes();
    let end = bytes
        .iter()
        .rposition(|&b| b != b'/')
        .map_or(1.min(bytes.len()), |i| i + 1);
    PathBuf::from(OsStr::from_bytes(&bytes[..end]))
}

/// What follows the last `/` (the name that is sent).
pub fn last_component(path: &Path) -> &[u8] {
    let bytes = path.as_os_str().as_bytes();
    match bytes.iter().rposition(|&b| b == b'/') {
        Some(slash) => &bytes[slash + 1..],
        None => bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_slashes() {
        assert_eq!(trim_trailing_slashes(Path::new("a//")), Path::new("a"));
        assert_eq!(trim_trailing_slashes(Path::new("/")), Path::new("/"));
        assert_eq!(trim_trailing_slashes(Path::new("///")), Path::new("/"));
        assert_eq!(trim_trailing_slashes(Path::new("a/b")), Path::new("a/b"));
    }

    #[test]
    fn last_components() {
        assert_eq!(last_component(Path::new("a/b c")), b"b c");
        assert_eq!(last_component(Path::new("name")), b"name");
        assert_eq!(last_component(Path::new("/")), b"");
    }

    /// Every step of a tree with a loop, a FIFO and an unreadable entry.
    #[test]
    fn a_walk_follows_links_refuses_loops_and_counts_as_it_walks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tree");
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::write(root.join("a"), b"12345").unwrap();
        fs::write(root.join("sub/b"), b"xy").unwrap();
        std::os::unix::fs::symlink("..", root.join("sub/up")).unwrap();
        nix::unistd::mkfifo(&root.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();

        let mut walk = Walk::new(&root, true);
        let mut seen = Vec::new();
        while let Some(step) = walk.next() {
            match step {
                Step::File { path, .. } => seen.push(format!("file {}", path.display())),
                Step::Directory(d) => {
                    seen.push(format!("dir {} as {:?}", d.path.display(), d.name()));
                    walk.enter(d);
                }
                Step::Leave => seen.push("leave".into()),
                Step::Problem(p) => seen.push(format!("problem {p}")),
            }
        }
        let at = |rest: &str| root.join(rest).display().to_string();
        let mut expected_any_order = vec![
            format!("file {}", at("a")),
            format!("file {}", at("sub/b")),
            format!("problem {}: not a regular file", at("fifo")),
            format!(
                "problem {}: directory loop (symbolic link to a parent)",
                at("sub/up")
            ),
        ];
        assert_eq!(seen[0], format!("dir {} as {:?}", root.display(), b"tree"));
        assert_eq!(seen.last().unwrap(), "leave");
        assert_eq!(seen.iter().filter(|s| *s == "leave").count(), 2);
        for line in expected_any_order.drain(..) {
            assert!(seen.contains(&line), "{line} not in {seen:?}");
        }
        assert_eq!(count([root.as_path()].into_iter(), true), (2, 7));
        assert_eq!(count([root.as_path()].into_iter(), false), (0, 0));
        assert_eq!(count([root.join("a").as_path()].into_iter(), false), (1, 5));
    }

    #[test]
    fn dot_directories_go_under_their_real_names() {
        let dir = tempfile::tempdir().unwrap();
        let inner = dir.path().join("real");
        fs::create_dir(&inner).unwrap();
        let mut walk = Walk::new(&inner.join("."), true);
        let Some(Step::Directory(d)) = walk.next() else {
            panic!("not a directory step");
        };
        assert_eq!(d.name(), b"real");
    }
}
