//! The one way root opens a path a user may have shaped: credential caches,
//! keytabs, anything a template expands to under a home directory.
//!
//! The path is walked from `/` one component at a time with `O_NOFOLLOW`, so
//! a symbolic link in *any* component stops the walk with an error naming it.
//! Refusing only a final link is not enough: with `~/.k -> /etc`, the path
//! `~/.k/krb5.keytab` has an innocent last component and root would read the
//! host keytab. The final file is opened without following a link, without
//! blocking (a planted fifo would otherwise hang the reader until a writer
//! comes), without acquiring a controlling terminal, and must be a regular
//! file, with at most one link unless the caller says otherwise ([`Links`]).
//!
//! No locks are taken: a user holding a lock on their own file must not be
//! able to stall the hub's threads.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{open, openat, AtFlags, OFlag};
use nix::sys::stat::{fstat, fstatat, FileStat, Mode, SFlag};

/// Why a path could not be opened safely. `op` says what the caller was
/// doing ("read", "write") for the message.
#[derive(Debug, thiserror::Error)]
pub enum SafePathError {
    #[error("{path}: path must be absolute")]
    NotAbsolute { path: PathBuf },

    #[error("{path}: {reason}")]
    InvalidPath { path: PathBuf, reason: &'static str },

    #[error("refusing to {op} {path}: {component} is a symbolic link")]
    SymlinkInPath {
        path: PathBuf,
        op: &'static str,
        component: PathBuf,
    },

    /// The final entry is not something root should read (a link, a fifo, a
    /// second hard link, ...).
    #[error("refusing to {op} {path}: {reason}")]
    UnsafeTarget {
        path: PathBuf,
        op: &'static str,
        reason: String,
    },

    #[error("refusing to {op} {path}: it is {size} bytes, more than the limit of {max_len}")]
    TooLarge {
        path: PathBuf,
        op: &'static str,
        size: u64,
        max_len: usize,
    },

    #[error("could not {op} {path}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl SafePathError {
    pub(crate) fn io(path: &Path, op: &'static str, source: impl Into<std::io::Error>) -> Self {
        SafePathError::Io {
            path: path.to_path_buf(),
            op,
            source: source.into(),
        }
    }

    /// True when the file (or a directory on the way) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, SafePathError::Io { source, .. }
            if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// An absolute path taken apart into directory components and a final name.
pub(crate) struct SplitPath<'a> {
    pub(crate) dirs: Vec<&'a OsStr>,
    pub(crate) name: &'a OsStr,
}

impl<'a> SplitPath<'a> {
    /// Works on the raw bytes rather than `Path::components`, which quietly drops
    /// a trailing `/` or `.` and would turn `/tmp/cc/` into the file `/tmp/cc`.
    pub(crate) fn new(path: &'a Path) -> Result<Self, SafePathError> {
        let invalid = |reason| SafePathError::InvalidPath {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = path.as_os_str().as_bytes();
        if bytes.first() != Some(&b'/') {
            return Err(SafePathError::NotAbsolute {
                path: path.to_path_buf(),
            });
        }
        if bytes.contains(&0) {
            return Err(invalid("path must not contain a NUL byte"));
        }
        // Cannot fail: the path starts with '/'.
        let slash = bytes.iter().rposition(|&b| b == b'/').unwrap_or(0);
        let name = &bytes[slash + 1..];
        if name.is_empty() || name == b"." || name == b".." {
            return Err(invalid(
                "path must end in a file name (not '/', '.' or '..')",
            ));
        }
        let mut dirs = Vec::new();
        for component in bytes[..slash].split(|&b| b == b'/') {
            match component {
                b"" | b"." => {}
                // Walking `..` follows no symlink, but a path that climbs back out
                // of a directory is not one an admin means to configure; refuse it
                // rather than reason about where it lands.
                b".." => return Err(invalid("path must not contain '..'")),
                _ => dirs.push(OsStr::from_bytes(component)),
            }
        }
        Ok(SplitPath {
            dirs,
            name: OsStr::from_bytes(name),
        })
    }

    /// The directory made of the first `count` components, for messages.
    pub(crate) fn dir_prefix(&self, count: usize) -> PathBuf {
        let mut dir = PathBuf::from("/");
        dir.extend(&self.dirs[..count]);
        dir
    }
}

/// Open the directory holding the target, one component at a time from `/`.
///
/// `O_NOFOLLOW` on each step means a symlink anywhere in the directory path
/// stops the walk: root must never follow a path a user could have planted.
/// `O_PATH` needs only search permission and gives a descriptor usable as the
/// base of the `*at` calls that follow.
pub(crate) fn open_directory(
    path: &Path,
    split: &SplitPath<'_>,
    op: &'static str,
) -> Result<OwnedFd, SafePathError> {
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut dir = open("/", flags, Mode::empty())
        .map_err(|e| SafePathError::io(Path::new("/"), "open directory", e))?;
    for (index, component) in split.dirs.iter().enumerate() {
        match openat(dir.as_fd(), *component, flags, Mode::empty()) {
            Ok(next) => dir = next,
            Err(errno) => {
                let failed = split.dir_prefix(index + 1);
                // With O_PATH|O_NOFOLLOW a symlink is opened as itself and then
                // fails O_DIRECTORY (ENOTDIR); without O_PATH it is ELOOP. Look
                // at the entry to tell a symlink from a plain non-directory.
                if matches!(errno, Errno::ENOTDIR | Errno::ELOOP)
                    && is_symlink(dir.as_fd(), component)
                {
                    return Err(SafePathError::SymlinkInPath {
                        path: path.to_path_buf(),
                        op,
                        component: failed,
                    });
                }
                return Err(SafePathError::io(&failed, "open directory", errno));
            }
        }
    }
    Ok(dir)
}

fn is_symlink(dir: BorrowedFd<'_>, name: &OsStr) -> bool {
    fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)
        .map(|st| file_type(&st) == SFlag::S_IFLNK)
        .unwrap_or(false)
}

/// How many names the file read may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// Exactly one (or none: see [`unsafe_target`]). A second name may be
    /// one a user made for a file they cannot read (with
    /// `fs.protected_hardlinks` off), hoping root reads it for them: a
    /// keytab path must not lead to the host's keys.
    Single,
    /// Any number, for a caller that then accepts the file only if the
    /// inode is the expected owner's with no group or other permission bits
    /// (a credential cache): every name of an inode shares its owner and
    /// mode, so no other name lets anyone but the owner change or read what
    /// the owner's name holds, and another user hard-linking the owner's
    /// cache must not make it unreadable to the hub.
    OwnerChecked,
}

/// Opens `path` for reading through the walk and checks it is a regular
/// file with the links `links` allows; returns it with its status.
pub fn open_regular_file(
    path: &Path,
    op: &'static str,
    links: Links,
) -> Result<(File, FileStat), SafePathError> {
    let split = SplitPath::new(path)?;
    let dir = open_directory(path, &split, op)?;
    // O_NONBLOCK: opening a fifo for reading would otherwise wait for a writer,
    // and a user can plant one at the path. O_NOCTTY: a planted tty must not
    // become our controlling terminal.
    let flags = OFlag::O_RDONLY
        | OFlag::O_NOFOLLOW
        | OFlag::O_NONBLOCK
        | OFlag::O_NOCTTY
        | OFlag::O_CLOEXEC;
    let fd = match openat(dir.as_fd(), split.name, flags, Mode::empty()) {
        Ok(fd) => fd,
        // O_NOFOLLOW reports a final symlink as ELOOP.
        Err(Errno::ELOOP) => {
            return Err(SafePathError::UnsafeTarget {
                path: path.to_path_buf(),
                op,
                reason: "it is a symbolic link".to_owned(),
            })
        }
        Err(e) => return Err(SafePathError::io(path, "open", e)),
    };
    let st = fstat(&fd).map_err(|e| SafePathError::io(path, "stat", e))?;
    if let Some(reason) = unsafe_target(&st, links) {
        return Err(SafePathError::UnsafeTarget {
            path: path.to_path_buf(),
            op,
            reason,
        });
    }
    Ok((File::from(fd), st))
}

/// Reads a whole file through [`open_regular_file`]: at most `max_len` bytes
/// (error if larger), with plain read(2) calls and no lock, so a user holding
/// a lock on the file cannot make us wait.
pub fn read_regular_file(
    path: &Path,
    op: &'static str,
    max_len: usize,
    links: Links,
) -> Result<(Vec<u8>, FileStat), SafePathError> {
    let (file, st) = open_regular_file(path, op, links)?;
    let too_large = |size| SafePathError::TooLarge {
        path: path.to_path_buf(),
        op,
        size,
        max_len,
    };
    let size = u64::try_from(st.st_size).unwrap_or(0);
    if size > max_len as u64 {
        return Err(too_large(size));
    }
    // Room for one byte more than expected, so that reading a file of the
    // announced size never reallocates (a keytab's key bytes would otherwise be
    // left behind in freed memory) and a file that grew after fstat is caught.
    let mut buf = Vec::with_capacity(size as usize + 1);
    file.take(max_len as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| SafePathError::io(path, "read", e))?;
    if buf.len() > max_len {
        crate::secret::wipe(&mut buf);
        return Err(too_large(buf.len() as u64));
    }
    Ok((buf, st))
}

/// Why `st` is not a regular file with the links `links` allows, if it is not.
///
/// A second hard link means someone else has a name for this inode, possibly
/// one we would not want to read or overwrite through (a user can link a file
/// they cannot read into their home when `fs.protected_hardlinks` is off).
pub(crate) fn unsafe_target(st: &FileStat, links: Links) -> Option<String> {
    let kind = match file_type(st) {
        SFlag::S_IFREG => None,
        SFlag::S_IFLNK => Some("a symbolic link"),
        SFlag::S_IFDIR => Some("a directory"),
        SFlag::S_IFIFO => Some("a fifo"),
        SFlag::S_IFSOCK => Some("a socket"),
        SFlag::S_IFCHR => Some("a character device"),
        SFlag::S_IFBLK => Some("a block device"),
        _ => Some("not a regular file"),
    };
    if let Some(kind) = kind {
        return Some(format!("it is {kind}"));
    }
    // Zero links is not an attack: the file was just replaced by an atomic
    // rename (ours or the user's own server's) after we opened or looked it
    // up, and what we hold is the complete previous file.
    if links == Links::Single && st.st_nlink > 1 {
        return Some(format!("it has {} hard links", st.st_nlink));
    }
    None
}

pub(crate) fn file_type(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    struct TestDir(PathBuf);

    impl TestDir {
        fn new() -> Self {
            TestDir(nix::unistd::mkdtemp("/tmp/pamkrb-safepath-XXXXXX").expect("mkdtemp"))
        }
        fn path(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn reads_a_regular_file() {
        let dir = TestDir::new();
        std::fs::write(dir.path("f"), b"data").unwrap();
        let (bytes, st) = read_regular_file(&dir.path("f"), "read", 4, Links::Single).unwrap();
        assert_eq!(bytes, b"data");
        assert_eq!(st.st_size, 4);
    }

    #[test]
    fn symlink_in_a_middle_component_is_refused() {
        // The attack from the issue: `.k -> /etc` makes `{home}/.k/hostname`
        // (think krb5.keytab) a path to a file the user cannot read.
        let dir = TestDir::new();
        symlink("/etc", dir.path(".k")).unwrap();
        let err = read_regular_file(
            &dir.path(".k").join("hostname"),
            "read",
            1 << 20,
            Links::Single,
        )
        .unwrap_err();
        match &err {
            SafePathError::SymlinkInPath { component, .. } => {
                assert_eq!(component, &dir.path(".k"))
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().contains(".k is a symbolic link"), "{err}");

        // Deeper: a real directory below the link does not help.
        std::fs::create_dir(dir.path("real")).unwrap();
        std::fs::create_dir(dir.path("real").join("sub")).unwrap();
        std::fs::write(dir.path("real").join("sub").join("f"), b"x").unwrap();
        symlink(dir.path("real"), dir.path("via")).unwrap();
        let err = open_regular_file(
            &dir.path("via").join("sub").join("f"),
            "read",
            Links::Single,
        )
        .unwrap_err();
        assert!(
            matches!(err, SafePathError::SymlinkInPath { ref component, .. } if component == &dir.path("via")),
            "{err:?}"
        );
    }

    #[test]
    fn final_symlink_fifo_and_hard_link_are_refused() {
        let dir = TestDir::new();
        std::fs::write(dir.path("real"), b"x").unwrap();
        symlink(dir.path("real"), dir.path("link")).unwrap();
        let err = open_regular_file(&dir.path("link"), "read", Links::Single).unwrap_err();
        assert!(err.to_string().ends_with("it is a symbolic link"), "{err}");

        nix::unistd::mkfifo(&dir.path("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        // Would block forever without O_NONBLOCK; the test harness would hang.
        let err = open_regular_file(&dir.path("fifo"), "read", Links::Single).unwrap_err();
        assert!(err.to_string().ends_with("it is a fifo"), "{err}");

        std::fs::hard_link(dir.path("real"), dir.path("second")).unwrap();
        let err = open_regular_file(&dir.path("second"), "read", Links::Single).unwrap_err();
        assert!(err.to_string().ends_with("it has 2 hard links"), "{err}");
        // Only a caller that checks the owner and mode itself takes it.
        let (_, st) = open_regular_file(&dir.path("second"), "read", Links::OwnerChecked).unwrap();
        assert_eq!(st.st_nlink, 2);
        let err = open_regular_file(&dir.path("link"), "read", Links::OwnerChecked).unwrap_err();
        assert!(err.to_string().ends_with("it is a symbolic link"), "{err}");
    }

    #[test]
    fn oversize_file_is_refused() {
        let dir = TestDir::new();
        std::fs::write(dir.path("big"), vec![0u8; 11]).unwrap();
        let err = read_regular_file(&dir.path("big"), "read", 10, Links::Single).unwrap_err();
        assert!(
            matches!(
                err,
                SafePathError::TooLarge {
                    size: 11,
                    max_len: 10,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn missing_file_is_not_found() {
        let dir = TestDir::new();
        assert!(open_regular_file(&dir.path("nope"), "read", Links::Single)
            .unwrap_err()
            .is_not_found());
        assert!(
            open_regular_file(&dir.path("nodir").join("f"), "read", Links::Single)
                .unwrap_err()
                .is_not_found()
        );
    }
}
