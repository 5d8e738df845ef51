//! Writing and reading Kerberos credential cache files without trusting the path.
//!
//! The hub runs as root and writes a user's cache to a place the user can also
//! write to (`/tmp/krb5cc_<uid>`, a directory under their home). The old recipe,
//! `kinit` followed by `chown` by path, let a user plant a symlink at the cache
//! path and have root hand them any file on the system. Everything here therefore
//! works on file descriptors: the directory is reached by opening one component
//! at a time with `O_NOFOLLOW`, the file is written under a random temporary name
//! created with `O_EXCL`, its owner and mode are set on the descriptor, and it is
//! moved into place with `renameat`, which replaces a directory entry and never
//! follows a link at the destination. This is the shape MIT krb5's `cc_file.c`
//! and kstart's `k5start` use for the same job.
//!
//! Nothing here changes process-wide state (umask, working directory, effective
//! ids, environment): the hub is multi-threaded.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, renameat, AtFlags, OFlag};
use nix::sys::stat::{fchmod, fstat, fstatat, Mode};
use nix::unistd::{fchown, getegid, geteuid, unlinkat, Gid, Uid, UnlinkatFlags};

use crate::safe_path::{self, not_a_single_regular_file, open_directory, SafePathError, SplitPath};

/// The uid and gid a credential cache file should belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

/// Why a cache file could not be written or read.
///
/// `SymlinkInPath`, `UnsafeDirectory` and `UnsafeTarget` mean the file system is
/// arranged so that someone other than the cache owner could redirect the write
/// (or it is under attack); the admin fixes the path or the directory and nothing
/// was modified. `NotAbsolute` and `InvalidPath` are configuration mistakes.
/// `Io` is an ordinary system failure, carrying the path and step that failed.
#[derive(Debug, thiserror::Error)]
pub enum CacheFileError {
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

    #[error("refusing to write {path}: directory {dir} {reason}")]
    UnsafeDirectory {
        path: PathBuf,
        dir: PathBuf,
        reason: String,
    },

    #[error("refusing to {op} {path}: {reason}")]
    UnsafeTarget {
        path: PathBuf,
        op: &'static str,
        reason: String,
    },

    #[error("refusing to read {path}: it is {size} bytes, more than the limit of {max_len}")]
    TooLarge {
        path: PathBuf,
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

impl CacheFileError {
    fn io(path: &Path, op: &'static str, source: impl Into<std::io::Error>) -> Self {
        CacheFileError::Io {
            path: path.to_path_buf(),
            op,
            source: source.into(),
        }
    }
}

/// The walk lives in `safe_path`; its errors keep their cache-file names and
/// messages here.
impl From<SafePathError> for CacheFileError {
    fn from(err: SafePathError) -> Self {
        match err {
            SafePathError::NotAbsolute { path } => CacheFileError::NotAbsolute { path },
            SafePathError::InvalidPath { path, reason } => {
                CacheFileError::InvalidPath { path, reason }
            }
            SafePathError::SymlinkInPath {
                path,
                op,
                component,
            } => CacheFileError::SymlinkInPath {
                path,
                op,
                component,
            },
            SafePathError::UnsafeTarget { path, op, reason } => {
                CacheFileError::UnsafeTarget { path, op, reason }
            }
            SafePathError::TooLarge {
                path,
                size,
                max_len,
                ..
            } => CacheFileError::TooLarge {
                path,
                size,
                max_len,
            },
            SafePathError::Io { path, op, source } => CacheFileError::Io { path, op, source },
        }
    }
}

/// Names of temporary files start like this so an admin can tell whose they are.
const TEMP_MARKER: &str = ".pamkrb-";

/// `O_EXCL` collisions with 64 random bits mean someone is guessing names at
/// us or the random source is broken; a few retries cover honest bad luck.
const TEMP_ATTEMPTS: usize = 4;

const CACHE_MODE: u32 = 0o600;

/// Atomically replace `target` with `contents`, owned by `owner` (None: the
/// calling process's euid/egid), mode 0600.
///
/// Refuses, without touching anything, when a directory on the way to `target`
/// is a symlink, when the final directory is owned by someone other than root or
/// the owner, when it is writable by group or others without being sticky, or
/// when an existing `target` is not a plain file of the owner (or root) with a
/// single link.
pub fn install(target: &Path, contents: &[u8], owner: Option<Owner>) -> Result<(), CacheFileError> {
    let owner = owner.unwrap_or_else(|| Owner {
        uid: geteuid().as_raw(),
        gid: getegid().as_raw(),
    });
    let split = SplitPath::new(target)?;
    let dir = open_directory(target, &split, "write")?;
    check_directory(target, &split, dir.as_fd(), owner)?;
    check_existing_target(target, dir.as_fd(), split.name, owner)?;

    let (file, guard) = create_temp(target, dir.as_fd(), split.name)?;
    let mut file = File::from(file);

    let st =
        fstat(&file).map_err(|e| CacheFileError::io(target, "stat the temporary file for", e))?;
    // Only chown when needed: fchown is in general a privileged call, and an
    // unprivileged user writing its own cache has nothing to change.
    if st.st_uid != owner.uid || st.st_gid != owner.gid {
        fchown(
            &file,
            Some(Uid::from_raw(owner.uid)),
            Some(Gid::from_raw(owner.gid)),
        )
        .map_err(|e| CacheFileError::io(target, "set the owner of the temporary file for", e))?;
    }
    // The creation mode went through the process umask and possibly a default
    // ACL; set the exact mode on the descriptor rather than touch the umask.
    fchmod(&file, Mode::from_bits_truncate(CACHE_MODE))
        .map_err(|e| CacheFileError::io(target, "set the mode of the temporary file for", e))?;
    file.write_all(contents)
        .map_err(|e| CacheFileError::io(target, "write the temporary file for", e))?;
    // No fsync, as MIT's own FILE cache does not: it cost 1-10 ms per renewal
    // here (more under I/O load), and the worst a crash can leave is an empty
    // or stale cache, which the next check finds unreadable or expiring and
    // simply replaces. Tickets are renewable from the keytab at any time.

    // rename(2) replaces the directory entry `name`; if someone swapped a symlink
    // in after our check, the link itself is replaced, never what it points to.
    renameat(dir.as_fd(), guard.name.as_os_str(), dir.as_fd(), split.name)
        .map_err(|e| CacheFileError::io(target, "rename the temporary file onto", e))?;
    guard.disarm();
    Ok(())
}

/// Read a credential cache file without following a symlink or blocking on a
/// fifo; at most `max_len` bytes (error if larger).
pub fn read(path: &Path, max_len: usize) -> Result<Vec<u8>, CacheFileError> {
    Ok(safe_path::read_regular_file(path, "read", max_len)?.0)
}

/// Only the final directory is checked: every later step goes through its
/// descriptor, so only those who can add, remove or rename entries in it can
/// interfere, and they must be root, the cache owner, or held back by the
/// sticky bit (which stops others from renaming or deleting our files, as in /tmp).
fn check_directory(
    target: &Path,
    split: &SplitPath<'_>,
    dir: BorrowedFd<'_>,
    owner: Owner,
) -> Result<(), CacheFileError> {
    let st = fstat(dir).map_err(|e| {
        CacheFileError::io(&split.dir_prefix(split.dirs.len()), "stat directory", e)
    })?;
    let refuse = |reason: String| CacheFileError::UnsafeDirectory {
        path: target.to_path_buf(),
        dir: split.dir_prefix(split.dirs.len()),
        reason,
    };
    if st.st_uid != 0 && st.st_uid != owner.uid {
        return Err(refuse(format!(
            "is owned by uid {}, not root or the cache owner {}",
            st.st_uid, owner.uid
        )));
    }
    let mode = Mode::from_bits_truncate(st.st_mode);
    if !mode.contains(Mode::S_ISVTX) {
        if mode.contains(Mode::S_IWOTH) {
            return Err(refuse("is writable by others and not sticky".to_owned()));
        }
        if mode.contains(Mode::S_IWGRP) {
            return Err(refuse("is writable by its group and not sticky".to_owned()));
        }
    }
    Ok(())
}

/// Refuse to replace anything that is not a plain, singly linked file of the
/// owner or root. The rename would be safe regardless (it replaces the entry, not
/// the file behind it), but such an entry is either a mistake or an attack, and
/// silently discarding it would hide both from the admin.
fn check_existing_target(
    target: &Path,
    dir: BorrowedFd<'_>,
    name: &OsStr,
    owner: Owner,
) -> Result<(), CacheFileError> {
    let st = match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(CacheFileError::io(target, "stat", e)),
    };
    let refuse = |reason| CacheFileError::UnsafeTarget {
        path: target.to_path_buf(),
        op: "write",
        reason,
    };
    if let Some(reason) = not_a_single_regular_file(&st) {
        return Err(refuse(reason));
    }
    if st.st_uid != 0 && st.st_uid != owner.uid {
        return Err(refuse(format!(
            "it is owned by uid {}, not {}",
            st.st_uid, owner.uid
        )));
    }
    Ok(())
}

/// Removes the temporary file by name through the directory descriptor unless
/// disarmed, so no error path leaves a copy of the credentials behind.
struct TempFileGuard<'d> {
    dir: BorrowedFd<'d>,
    name: OsString,
    armed: bool,
}

impl TempFileGuard<'_> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for TempFileGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            // Nothing useful to do if this fails: the caller already has the
            // error that brought us here, and that is the one to report.
            let _ = unlinkat(self.dir, self.name.as_os_str(), UnlinkatFlags::NoRemoveDir);
        }
    }
}

/// Create `.<name>.pamkrb-<16 hex>` in `dir`, exclusively.
///
/// The random part keeps a user from planting something at the name in advance;
/// `O_EXCL` makes creation fail rather than reuse anything that is there anyway.
fn create_temp<'d>(
    target: &Path,
    dir: BorrowedFd<'d>,
    name: &OsStr,
) -> Result<(OwnedFd, TempFileGuard<'d>), CacheFileError> {
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut last = Errno::EEXIST;
    for _ in 0..TEMP_ATTEMPTS {
        let suffix = random_hex()
            .map_err(|e| CacheFileError::io(target, "generate a temporary name for", e))?;
        let mut temp = Vec::with_capacity(name.len() + TEMP_MARKER.len() + suffix.len() + 1);
        temp.push(b'.');
        temp.extend_from_slice(name.as_bytes());
        temp.extend_from_slice(TEMP_MARKER.as_bytes());
        temp.extend_from_slice(&suffix);
        let temp = OsString::from_vec(temp);
        match openat(
            dir,
            temp.as_os_str(),
            flags,
            Mode::from_bits_truncate(CACHE_MODE),
        ) {
            Ok(fd) => {
                let guard = TempFileGuard {
                    dir,
                    name: temp,
                    armed: true,
                };
                return Ok((fd, guard));
            }
            Err(Errno::EEXIST) => last = Errno::EEXIST,
            Err(e) => {
                return Err(CacheFileError::io(
                    target,
                    "create a temporary file next to",
                    e,
                ))
            }
        }
    }
    Err(CacheFileError::io(
        target,
        "create a temporary file next to",
        last,
    ))
}

/// 64 bits from getrandom(2) as 16 lowercase hex digits.
pub(crate) fn random_hex() -> Result<[u8; 16], Errno> {
    let mut bytes = [0u8; 8];
    let mut filled = 0;
    while filled < bytes.len() {
        let rest = &mut bytes[filled..];
        // SAFETY: the pointer and length describe `rest`, a live, writable,
        // exclusively borrowed part of `bytes`; getrandom writes at most that many
        // bytes into it and keeps no reference after returning.
        let got = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        match Errno::result(got) {
            Ok(n) => filled += n as usize,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 16];
    for (i, byte) in bytes.iter().enumerate() {
        out[2 * i] = HEX[usize::from(byte >> 4)];
        out[2 * i + 1] = HEX[usize::from(byte & 0x0f)];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::fcntl::open;
    use std::io::Read;
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt as _;
    use std::sync::mpsc;
    use std::time::Duration;

    /// A fresh directory under /tmp, removed (without following symlinks) on drop.
    struct TestDir(PathBuf);

    impl TestDir {
        fn new() -> Self {
            let dir = nix::unistd::mkdtemp("/tmp/pamkrb-cachefile-XXXXXX").expect("mkdtemp");
            TestDir(dir)
        }

        fn path(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }

        fn chmod(&self, mode: u32) {
            std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(mode))
                .expect("chmod test dir");
        }

        fn entries(&self) -> Vec<String> {
            entries(&self.0)
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .into_string()
                    .expect("utf-8")
            })
            .collect();
        names.sort();
        names
    }

    fn assert_no_temp_files(dir: &Path) {
        let temps: Vec<String> = entries(dir)
            .into_iter()
            .filter(|n| n.contains(TEMP_MARKER))
            .collect();
        assert!(temps.is_empty(), "temporary files left behind: {temps:?}");
    }

    fn mode_of(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).expect("lstat").mode() & 0o7777
    }

    /// Run `f` on another thread and fail instead of hanging if it blocks (a fifo
    /// opened without O_NONBLOCK would wait for a writer forever).
    fn with_deadline<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("call blocked for 10 s")
    }

    /// Tests that need other uids skip themselves when not root: an unprivileged
    /// run cannot chown, and must say so instead of passing silently.
    fn running_as_root(test: &str) -> bool {
        if nix::unistd::geteuid().is_root() {
            return true;
        }
        eprintln!("skipping {test}: needs root to create files owned by other uids");
        false
    }

    fn me() -> Owner {
        Owner {
            uid: geteuid().as_raw(),
            gid: getegid().as_raw(),
        }
    }

    #[test]
    fn a_just_replaced_file_is_not_a_hard_link() {
        // A reader that opened the cache just before a rename replaced it
        // holds an inode with no links left: that is not an attack.
        let dir = TestDir::new();
        let target = dir.path("krb5cc_test");
        std::fs::write(&target, b"old").unwrap();
        let file = std::fs::File::open(&target).unwrap();
        std::fs::remove_file(&target).unwrap();
        let st = nix::sys::stat::fstat(&file).unwrap();
        assert_eq!(st.st_nlink, 0);
        assert_eq!(not_a_single_regular_file(&st), None);
    }

    #[test]
    fn install_creates_file_with_mode_0600_and_content() {
        let dir = TestDir::new();
        let target = dir.path("krb5cc_test");
        install(&target, b"ticket", None).expect("install");
        assert_eq!(std::fs::read(&target).unwrap(), b"ticket");
        assert_eq!(mode_of(&target), 0o600);
        let meta = std::fs::metadata(&target).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (me().uid, me().gid));
        assert_eq!(dir.entries(), vec!["krb5cc_test"]);
    }

    #[test]
    fn install_with_own_uid_as_owner_works() {
        let dir = TestDir::new();
        let target = dir.path("cc");
        install(&target, b"x", Some(me())).expect("install");
        assert_eq!(std::fs::read(&target).unwrap(), b"x");
    }

    #[test]
    fn install_replaces_existing_file_atomically() {
        let dir = TestDir::new();
        let target = dir.path("cc");
        std::fs::write(&target, b"old").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        let old_inode = std::fs::metadata(&target).unwrap().ino();
        // Keep the old file open: a reader mid-way through sees the old content.
        let old = File::open(&target).unwrap();
        install(&target, b"new", None).expect("install");
        let meta = std::fs::metadata(&target).unwrap();
        assert_ne!(meta.ino(), old_inode, "file was rewritten in place");
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        assert_eq!(mode_of(&target), 0o600);
        let mut seen = Vec::new();
        (&old).read_to_end(&mut seen).unwrap();
        assert_eq!(seen, b"old");
        assert_eq!(dir.entries(), vec!["cc"]);
    }

    #[test]
    fn install_refuses_symlink_at_target_and_leaves_pointee_alone() {
        let dir = TestDir::new();
        let victim = dir.path("victim");
        std::fs::write(&victim, b"precious").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
        let before = std::fs::metadata(&victim).unwrap();
        let target = dir.path("cc");
        symlink(&victim, &target).unwrap();

        let err = install(&target, b"evil", None).unwrap_err();
        assert!(
            matches!(err, CacheFileError::UnsafeTarget { .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "refusing to write {}: it is a symbolic link",
                target.display()
            )
        );

        let after = std::fs::metadata(&victim).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert_eq!(after.mode(), before.mode());
        assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
        assert_eq!(after.ino(), before.ino());
        assert_eq!(std::fs::read_link(&target).unwrap(), victim);
        assert_no_temp_files(&dir.0);
    }

    #[test]
    fn install_refuses_hard_link_at_target() {
        let dir = TestDir::new();
        let other = dir.path("other");
        std::fs::write(&other, b"other").unwrap();
        let target = dir.path("cc");
        std::fs::hard_link(&other, &target).unwrap();
        let err = install(&target, b"new", None).unwrap_err();
        assert!(err.to_string().contains("2 hard links"), "{err}");
        assert_eq!(std::fs::read(&other).unwrap(), b"other");
        assert_eq!(std::fs::metadata(&target).unwrap().nlink(), 2);
        assert_no_temp_files(&dir.0);
    }

    #[test]
    fn install_refuses_directory_at_target() {
        let dir = TestDir::new();
        let target = dir.path("cc");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("inside"), b"keep").unwrap();
        let err = install(&target, b"new", None).unwrap_err();
        assert!(err.to_string().ends_with("it is a directory"), "{err}");
        assert_eq!(std::fs::read(target.join("inside")).unwrap(), b"keep");
        assert_no_temp_files(&dir.0);
    }

    #[test]
    fn install_refuses_fifo_at_target_without_hanging() {
        let dir = TestDir::new();
        let target = dir.path("cc");
        nix::unistd::mkfifo(&target, Mode::from_bits_truncate(0o600)).unwrap();
        let t = target.clone();
        let err = with_deadline(move || install(&t, b"new", None)).unwrap_err();
        assert!(err.to_string().ends_with("it is a fifo"), "{err}");
        let ft = std::fs::symlink_metadata(&target).unwrap().file_type();
        assert!(std::os::unix::fs::FileTypeExt::is_fifo(&ft));
        assert_no_temp_files(&dir.0);
    }

    #[test]
    fn install_refuses_symlink_in_directory_path() {
        let dir = TestDir::new();
        let real = dir.path("real");
        std::fs::create_dir(&real).unwrap();
        symlink(&real, dir.path("link")).unwrap();
        let target = dir.path("link").join("cc");
        let err = install(&target, b"new", None).unwrap_err();
        match &err {
            CacheFileError::SymlinkInPath { component, .. } => {
                assert_eq!(component, &dir.path("link"))
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(entries(&real).is_empty());
        assert_no_temp_files(&dir.0);

        // A symlink further up (as if /tmp itself were a link) is caught too.
        let target = dir.path("link").join("sub").join("cc");
        std::fs::create_dir(real.join("sub")).unwrap();
        let err = install(&target, b"new", None).unwrap_err();
        assert!(
            matches!(err, CacheFileError::SymlinkInPath { .. }),
            "{err:?}"
        );
        assert!(entries(&real.join("sub")).is_empty());
    }

    #[test]
    fn install_refuses_writable_directory_without_sticky_bit() {
        let dir = TestDir::new();
        let target = dir.path("cc");
        dir.chmod(0o777);
        let err = install(&target, b"new", None).unwrap_err();
        assert!(
            matches!(err, CacheFileError::UnsafeDirectory { .. }),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains("is writable by others and not sticky"),
            "{err}"
        );
        assert!(dir.entries().is_empty());

        dir.chmod(0o770);
        let err = install(&target, b"new", None).unwrap_err();
        assert!(err.to_string().contains("writable by its group"), "{err}");
        assert!(dir.entries().is_empty());
    }

    #[test]
    fn install_accepts_sticky_world_writable_directory() {
        let dir = TestDir::new();
        dir.chmod(0o1777);
        let target = dir.path("cc");
        install(&target, b"ticket", None).expect("install into sticky dir");
        assert_eq!(std::fs::read(&target).unwrap(), b"ticket");
        assert_eq!(dir.entries(), vec!["cc"]);
    }

    #[test]
    fn planted_file_at_a_temp_like_name_is_untouched() {
        let dir = TestDir::new();
        let target = dir.path("cc");
        let planted = dir.path(".cc.pamkrb-0000000000000000");
        symlink("/etc/shadow", &planted).unwrap();
        let decoy = dir.path(".cc.pamkrb-ffffffffffffffff");
        std::fs::write(&decoy, b"decoy").unwrap();
        install(&target, b"ticket", None).expect("install");
        assert_eq!(std::fs::read(&target).unwrap(), b"ticket");
        assert_eq!(
            std::fs::read_link(&planted).unwrap(),
            Path::new("/etc/shadow")
        );
        assert_eq!(std::fs::read(&decoy).unwrap(), b"decoy");
        assert_eq!(
            dir.entries(),
            vec![
                ".cc.pamkrb-0000000000000000",
                ".cc.pamkrb-ffffffffffffffff",
                "cc"
            ]
        );
    }

    #[test]
    fn temp_names_are_random() {
        let a = random_hex().unwrap();
        let b = random_hex().unwrap();
        assert_ne!(a, b);
        assert!(a.iter().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn temp_file_guard_removes_the_file_unless_disarmed() {
        let dir = TestDir::new();
        let dirfd = open(&dir.0, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        let (fd, guard) = create_temp(&dir.path("cc"), dirfd.as_fd(), OsStr::new("cc")).unwrap();
        drop(fd);
        let names = dir.entries();
        assert_eq!(names.len(), 1);
        assert!(
            names[0].starts_with(".cc.pamkrb-") && names[0].len() == 27,
            "{names:?}"
        );
        drop(guard);
        assert!(dir.entries().is_empty());
    }

    #[test]
    fn failing_temp_creation_leaves_nothing_behind() {
        // 250 bytes fit NAME_MAX, the temporary name built from it does not.
        let dir = TestDir::new();
        let long = "n".repeat(250);
        let err = install(&dir.path(&long), b"x", None).unwrap_err();
        assert!(matches!(err, CacheFileError::Io { .. }), "{err:?}");
        assert!(dir.entries().is_empty());
    }

    #[test]
    fn relative_and_malformed_paths_are_rejected() {
        let err = install(Path::new("tmp/krb5cc_1"), b"x", None).unwrap_err();
        assert!(matches!(err, CacheFileError::NotAbsolute { .. }), "{err:?}");
        assert_eq!(err.to_string(), "tmp/krb5cc_1: path must be absolute");
        assert!(matches!(
            read(Path::new("krb5cc_1"), 10),
            Err(CacheFileError::NotAbsolute { .. })
        ));
        for bad in ["/", "/tmp/", "/tmp/.", "/tmp/..", "/tmp/../etc/cc", ""] {
            let err = install(Path::new(bad), b"x", None).unwrap_err();
            assert!(
                matches!(
                    err,
                    CacheFileError::InvalidPath { .. } | CacheFileError::NotAbsolute { .. }
                ),
                "{bad:?}: {err:?}"
            );
        }
    }

    #[test]
    fn redundant_slashes_and_dots_in_the_directory_are_fine() {
        let dir = TestDir::new();
        let messy = PathBuf::from(format!("/{}//./cc", dir.0.display()));
        install(&messy, b"ok", None).expect("install");
        assert_eq!(read(&dir.path("cc"), 10).unwrap(), b"ok");
    }

    #[test]
    fn read_returns_contents_of_regular_file() {
        let dir = TestDir::new();
        let target = dir.path("cc");
        install(&target, b"ticket", None).unwrap();
        assert_eq!(read(&target, 6).unwrap(), b"ticket");
        assert_eq!(read(&target, 1024).unwrap(), b"ticket");
        std::fs::write(dir.path("empty"), b"").unwrap();
        assert_eq!(read(&dir.path("empty"), 0).unwrap(), b"");
    }

    #[test]
    fn read_refuses_symlink() {
        let dir = TestDir::new();
        std::fs::write(dir.path("real"), b"secret").unwrap();
        symlink(dir.path("real"), dir.path("cc")).unwrap();
        let err = read(&dir.path("cc"), 100).unwrap_err();
        assert!(err.to_string().ends_with("it is a symbolic link"), "{err}");

        symlink(&dir.0, dir.path("dirlink")).unwrap();
        let err = read(&dir.path("dirlink").join("real"), 100).unwrap_err();
        assert!(
            matches!(err, CacheFileError::SymlinkInPath { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn read_refuses_fifo_without_blocking() {
        let dir = TestDir::new();
        let target = dir.path("cc");
        nix::unistd::mkfifo(&target, Mode::from_bits_truncate(0o600)).unwrap();
        let err = with_deadline(move || read(&target, 100)).unwrap_err();
        assert!(err.to_string().ends_with("it is a fifo"), "{err}");
    }

    #[test]
    fn read_refuses_directory_and_hard_link() {
        let dir = TestDir::new();
        std::fs::create_dir(dir.path("d")).unwrap();
        let err = read(&dir.path("d"), 100).unwrap_err();
        assert!(err.to_string().ends_with("it is a directory"), "{err}");

        std::fs::write(dir.path("a"), b"a").unwrap();
        std::fs::hard_link(dir.path("a"), dir.path("b")).unwrap();
        let err = read(&dir.path("b"), 100).unwrap_err();
        assert!(err.to_string().contains("2 hard links"), "{err}");
    }

    #[test]
    fn read_refuses_file_larger_than_limit() {
        let dir = TestDir::new();
        let target = dir.path("cc");
        std::fs::write(&target, b"0123456789").unwrap();
        let err = read(&target, 9).unwrap_err();
        match err {
            CacheFileError::TooLarge { size, max_len, .. } => assert_eq!((size, max_len), (10, 9)),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn read_of_missing_file_is_io_error() {
        let dir = TestDir::new();
        let err = read(&dir.path("nope"), 10).unwrap_err();
        match err {
            CacheFileError::Io { source, .. } => {
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound)
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    const NOBODY: Owner = Owner {
        uid: 65534,
        gid: 65534,
    };

    #[test]
    fn root_installs_cache_owned_by_another_user() {
        if !running_as_root("root_installs_cache_owned_by_another_user") {
            return;
        }
        let dir = TestDir::new();
        let target = dir.path("cc");
        install(&target, b"for nobody", Some(NOBODY)).expect("install");
        let meta = std::fs::metadata(&target).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (NOBODY.uid, NOBODY.gid));
        assert_eq!(meta.mode() & 0o7777, 0o600);
        assert_eq!(std::fs::read(&target).unwrap(), b"for nobody");

        // Replacing the user's own earlier cache is the normal refresh path.
        install(&target, b"refreshed", Some(NOBODY)).expect("refresh");
        assert_eq!(std::fs::read(&target).unwrap(), b"refreshed");
        assert_eq!(std::fs::metadata(&target).unwrap().uid(), NOBODY.uid);
    }

    #[test]
    fn root_refuses_target_owned_by_a_third_uid() {
        if !running_as_root("root_refuses_target_owned_by_a_third_uid") {
            return;
        }
        let dir = TestDir::new();
        let target = dir.path("cc");
        std::fs::write(&target, b"someone else's").unwrap();
        nix::unistd::chown(
            &target,
            Some(Uid::from_raw(12345)),
            Some(Gid::from_raw(12345)),
        )
        .unwrap();
        let err = install(&target, b"new", Some(NOBODY)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "refusing to write {}: it is owned by uid 12345, not 65534",
                target.display()
            )
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"someone else's");
        assert_eq!(std::fs::metadata(&target).unwrap().uid(), 12345);
        assert_no_temp_files(&dir.0);
    }

    #[test]
    fn root_refuses_directory_owned_by_another_user() {
        if !running_as_root("root_refuses_directory_owned_by_another_user") {
            return;
        }
        let dir = TestDir::new();
        nix::unistd::chown(&dir.0, Some(Uid::from_raw(12345)), None).unwrap();
        let err = install(&dir.path("cc"), b"new", Some(NOBODY)).unwrap_err();
        assert!(
            matches!(err, CacheFileError::UnsafeDirectory { .. }),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains("is owned by uid 12345, not root or the cache owner 65534"),
            "{err}"
        );
        assert!(dir.entries().is_empty());

        // The owner's own directory (e.g. under their home) is fine.
        nix::unistd::chown(&dir.0, Some(Uid::from_raw(NOBODY.uid)), None).unwrap();
        install(&dir.path("cc"), b"ok", Some(NOBODY)).expect("install into owner's dir");
        assert_eq!(std::fs::metadata(dir.path("cc")).unwrap().uid(), NOBODY.uid);
    }

    /// Environment variable through which the test below hands the child its target.
    const CHILD_TARGET_ENV: &str = "PAMKRB_CACHE_FILE_TEST_CHILD_TARGET";

    #[test]
    fn root_writes_cache_then_user_rewrites_it_unprivileged() {
        if !running_as_root("root_writes_cache_then_user_rewrites_it_unprivileged") {
            return;
        }
        let dir = TestDir::new();
        dir.chmod(0o1777);
        let target = dir.path("krb5cc_65534");
        install(&target, b"from root", Some(NOBODY)).expect("root install");

        // Dropping privileges in this (multi-threaded) process is exactly what the
        // module avoids, so re-run this test binary as nobody, restricted to the
        // helper test below.
        let exe = std::env::current_exe().unwrap();
        let module = module_path!().split_once("::").map_or("", |(_, m)| m);
        let status = std::process::Command::new(exe)
            .args([
                "--exact",
                &format!("{module}::child_rewrites_its_own_cache"),
                "--ignored",
                "--nocapture",
            ])
            .env(CHILD_TARGET_ENV, &target)
            .uid(NOBODY.uid)
            .gid(NOBODY.gid)
            .output();
        let output = match status {
            Ok(output) => output,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                eprintln!("skipping: nobody cannot execute the test binary: {e}");
                return;
            }
            Err(e) => panic!("spawning child: {e}"),
        };
        assert!(
            output.status.success(),
            "child failed: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        // Proves the child really ran rather than matching no test.
        assert_eq!(std::fs::read(&target).unwrap(), b"from the user");
        let meta = std::fs::metadata(&target).unwrap();
        assert_eq!((meta.uid(), meta.mode() & 0o7777), (NOBODY.uid, 0o600));
        assert_no_temp_files(&dir.0);
    }

    #[test]
    #[ignore = "helper: run as nobody by root_writes_cache_then_user_rewrites_it_unprivileged"]
    fn child_rewrites_its_own_cache() {
        let Some(target) = std::env::var_os(CHILD_TARGET_ENV) else {
            panic!("only meant to be run by root_writes_cache_then_user_rewrites_it_unprivileged");
        };
        let target = PathBuf::from(target);
        assert!(!geteuid().is_root());
        assert_eq!(read(&target, 100).unwrap(), b"from root");
        install(&target, b"from the user", None).expect("unprivileged install");
        assert_eq!(read(&target, 100).unwrap(), b"from the user");

        // An unprivileged fchown to a group we are not in fails after the
        // temporary file exists: the guard must remove it.
        let dir = target.parent().unwrap();
        let other = dir.join("krb5cc_other");
        let owner = Owner {
            uid: geteuid().as_raw(),
            gid: 0,
        };
        let err = install(&other, b"x", Some(owner)).unwrap_err();
        assert!(
            err.to_string()
                .contains("set the owner of the temporary file"),
            "{err}"
        );
        assert_eq!(entries(dir), vec!["krb5cc_65534"]);
    }
}
