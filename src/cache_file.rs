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
//! Whatever another user plants at the cache path itself (a symlink, a hard
//! link, a fifo, their own file, a directory) is replaced, never refused:
//! refusing would let any local user lock a victim out of their logins for as
//! long as the plant stays. The rename replaces the entry, never what it
//! points to; a directory, which rename cannot replace with a file, is first
//! moved aside within the same directory. Only an unsafe *directory* on the
//! way to the cache is refused, as that is the admin's configuration.
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
use nix::fcntl::{openat, renameat, renameat2, AtFlags, OFlag, RenameFlags};
use nix::sys::stat::{fchmod, fstat, fstatat, FileStat, Mode, SFlag};
use nix::unistd::{fchown, getegid, geteuid, unlinkat, Gid, Uid, UnlinkatFlags};

use crate::deadline::Deadline;
use crate::safe_path::{self, file_type, open_directory, Links, SafePathError, SplitPath};

/// The uid and gid a credential cache file should belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

impl Owner {
    /// The calling process's euid and egid: the owner when none is given.
    pub fn caller() -> Owner {
        Owner {
            uid: geteuid().as_raw(),
            gid: getegid().as_raw(),
        }
    }
}

/// Why a cache file could not be written or read.
///
/// `Path` (a symlink on the way, a relative or malformed path: the walk's own
/// errors) and `UnsafeDirectory` mean the path or directory is arranged so that
/// someone other than the cache owner could redirect the write, or is a
/// configuration mistake; the admin fixes it and nothing was modified.
/// `UnsafeTarget` is a cache that is not safely the owner's (only reading
/// refuses it; writing replaces it).
/// `DeadlinePassed` means the caller gave up waiting and nothing was installed.
/// `FallbackFailed` is a failure at the cache path and at its fallback.
/// `Io` is an ordinary system failure, carrying the path and step that failed.
#[derive(Debug, thiserror::Error)]
pub enum CacheFileError {
    /// The path itself: not absolute, malformed, a symlink on the way, or a
    /// final entry the walk refuses to read (see `safe_path`).
    #[error(transparent)]
    Path(#[from] SafePathError),

    #[error("refusing to {op} {path}: directory {dir} {reason}")]
    UnsafeDirectory {
        path: PathBuf,
        op: &'static str,
        dir: PathBuf,
        reason: String,
    },

    #[error("refusing to {op} {path}: {reason}")]
    UnsafeTarget {
        path: PathBuf,
        op: &'static str,
        reason: String,
    },

    #[error("gave up on {path} after the deadline; nothing was installed")]
    DeadlinePassed { path: PathBuf },

    /// The cache path could not be written and neither could the fallback
    /// (see `fallback`): `primary` is why the cache path failed.
    #[error("{primary}; the fallback failed too: {fallback}")]
    FallbackFailed {
        primary: Box<CacheFileError>,
        fallback: Box<CacheFileError>,
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
    pub(crate) fn io(path: &Path, op: &'static str, source: impl Into<std::io::Error>) -> Self {
        CacheFileError::Io {
            path: path.to_path_buf(),
            op,
            source: source.into(),
        }
    }
}

/// Names of temporary files start like this so an admin can tell whose they are.
const TEMP_MARKER: &str = ".pamkrb-";

/// `O_EXCL` collisions with 64 random bits mean someone is guessing names at
/// us or the random source is broken; a few retries cover honest bad luck.
const TEMP_ATTEMPTS: usize = 4;

const CACHE_MODE: u32 = 0o600;

/// A planted directory is moved aside to `.<name>` + this + 16 hex digits.
const PLANTED_MARKER: &str = ".pamkrb-planted-";

/// How often to look again when the entry at the target changes between our
/// look and the rename (someone racing a directory back in). Each round moves
/// the newest plant aside, so only a user winning every race keeps failing it.
const REPLACE_ATTEMPTS: usize = 4;

/// What `install` found at the target and replaced because it was not the
/// owner's own cache (a plain, singly linked file of theirs with mode 0600).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaced {
    /// "symbolic link", "hard link", "directory", "fifo", "file owned by
    /// another user", "file with mode 0644", …
    pub kind: String,
    /// The uid that owned the entry itself (for a symlink: the link).
    pub owner_uid: u32,
    /// Where a planted directory now is, in the same directory; `None` for
    /// anything else, which the rename simply replaced.
    pub moved_to: Option<PathBuf>,
}

/// Atomically replace `target` with `contents`, owned by `owner` (None: the
/// calling process's euid/egid), mode 0600, unless `deadline` has passed by
/// the time the file is ready to be moved into place.
///
/// Refuses, without touching anything, when a directory on the way to `target`
/// is a symlink, when the final directory is owned by someone other than root or
/// the owner, or when it is writable by group or others without being sticky.
/// Anything at `target` other than the owner's own cache is replaced (see
/// [`Replaced`]) and never written through; what it pointed to is not touched.
pub fn install(
    target: &Path,
    contents: &[u8],
    owner: Option<Owner>,
    deadline: Option<Deadline>,
) -> Result<Option<Replaced>, CacheFileError> {
    let owner = owner.unwrap_or_else(Owner::caller);
    let split = SplitPath::new(target)?;
    let dir = open_directory(target, &split, "write")?;
    check_directory(target, &split, dir.as_fd(), owner.uid, "write")?;

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

    drop(file);

    // Last moment to give up: after this the user's cache changes. The guard
    // removes the temporary file on this return.
    if deadline.is_some_and(|d| d.has_passed()) {
        return Err(CacheFileError::DeadlinePassed {
            path: target.to_path_buf(),
        });
    }
    let replaced = rename_into_place(
        target,
        dir.as_fd(),
        split.name,
        guard.name.as_os_str(),
        owner,
    )?;
    guard.disarm();
    Ok(replaced)
}

/// Move the finished temporary file `temp` onto `name`, replacing whatever is
/// there, and say what that was if it was not the owner's own cache.
///
/// rename(2) replaces the directory entry `name` itself: a symlink, a hard link,
/// a fifo, a socket or someone else's file is unlinked from `name`, and the file
/// a link points to, or the other names of a hard-linked inode, are not touched.
/// Only a directory cannot be replaced by a file; it is renamed aside first.
fn rename_into_place(
    target: &Path,
    dir: BorrowedFd<'_>,
    name: &OsStr,
    temp: &OsStr,
    owner: Owner,
) -> Result<Option<Replaced>, CacheFileError> {
    let mut last = Errno::EISDIR;
    for _ in 0..REPLACE_ATTEMPTS {
        let (mut replaced, is_dir) = match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => {
                let planted = planted_kind(&st, owner.uid).map(|kind| Replaced {
                    kind,
                    owner_uid: st.st_uid,
                    moved_to: None,
                });
                (planted, file_type(&st) == SFlag::S_IFDIR)
            }
            Err(Errno::ENOENT) => (None, false),
            Err(e) => return Err(CacheFileError::io(target, "stat", e)),
        };
        if let Some(planted) = replaced.as_mut().filter(|_| is_dir) {
            planted.moved_to = Some(move_aside(target, dir, name)?);
        }
        match renameat(dir, temp, dir, name) {
            Ok(()) => return Ok(replaced),
            // A directory appeared at `name` after our look (or a non-empty
            // one where we saw something else): look again and move it aside.
            Err(e @ (Errno::EISDIR | Errno::ENOTEMPTY | Errno::EEXIST)) => last = e,
            Err(e) => {
                return Err(CacheFileError::io(
                    target,
                    "rename the temporary file onto",
                    e,
                ))
            }
        }
    }
    Err(CacheFileError::io(
        target,
        "rename the temporary file onto (a directory kept reappearing at)",
        last,
    ))
}

/// What a directory entry at the cache path is, unless it is the owner's own
/// cache: a regular file of theirs, with one link and mode 0600.
fn planted_kind(st: &FileStat, owner_uid: u32) -> Option<String> {
    let kind = match file_type(st) {
        SFlag::S_IFREG => None,
        SFlag::S_IFLNK => Some("symbolic link"),
        SFlag::S_IFDIR => Some("directory"),
        SFlag::S_IFIFO => Some("fifo"),
        SFlag::S_IFSOCK => Some("socket"),
        SFlag::S_IFCHR => Some("character device"),
        SFlag::S_IFBLK => Some("block device"),
        _ => Some("special file"),
    };
    if let Some(kind) = kind {
        return Some(kind.to_owned());
    }
    if st.st_nlink > 1 {
        return Some("hard link".to_owned());
    }
    if st.st_uid != owner_uid {
        return Some("file owned by another user".to_owned());
    }
    let mode = st.st_mode & 0o7777;
    if mode != CACHE_MODE {
        return Some(format!("file with mode {mode:04o}"));
    }
    None
}

/// Rename the directory at `name` to `.<name>.pamkrb-planted-<16 hex>` in the
/// same directory and return its new path. Nothing inside it is opened, read or
/// followed: the rename moves the entry as a whole. `RENAME_NOREPLACE` keeps a
/// name someone guessed and planted from being replaced in turn.
fn move_aside(target: &Path, dir: BorrowedFd<'_>, name: &OsStr) -> Result<PathBuf, CacheFileError> {
    let mut last = Errno::EEXIST;
    for _ in 0..TEMP_ATTEMPTS {
        let aside = sibling_name(target, name, PLANTED_MARKER)?;
        match renameat2(
            dir,
            name,
            dir,
            aside.as_os_str(),
            RenameFlags::RENAME_NOREPLACE,
        ) {
            Ok(()) => return Ok(target.with_file_name(aside)),
            Err(Errno::EEXIST) => last = Errno::EEXIST,
            Err(e) => {
                return Err(CacheFileError::io(
                    target,
                    "move aside the directory planted at",
                    e,
                ))
            }
        }
    }
    Err(CacheFileError::io(
        target,
        "move aside the directory planted at",
        last,
    ))
}

/// `.<name><marker><16 random hex digits>`.
fn sibling_name(target: &Path, name: &OsStr, marker: &str) -> Result<OsString, CacheFileError> {
    let suffix =
        random_hex().map_err(|e| CacheFileError::io(target, "generate a temporary name for", e))?;
    let mut out = Vec::with_capacity(name.len() + marker.len() + suffix.len() + 1);
    out.push(b'.');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(marker.as_bytes());
    out.extend_from_slice(&suffix);
    Ok(OsString::from_vec(out))
}

/// Read the credential cache of `owner_uid` without following a symlink or
/// blocking on a fifo; at most `max_len` bytes (error if larger).
///
/// Refuses (`UnsafeTarget`) anything but a regular file owned by
/// `owner_uid`, with no permission bits for group or others: a cache another
/// user planted at the path, however valid its ticket, must never be taken
/// for the owner's, or the hub would call it fresh and point the owner's
/// `KRB5CCNAME` at a file the planter controls. Such a file may have more
/// than one name: with `fs.protected_hardlinks` off another user can link the
/// owner's cache after every rename, and refusing it would send the owner to
/// sign in again forever; the other names share its owner and mode, so no
/// one else can change or read it through them ([`Links::OwnerChecked`]).
pub fn read(path: &Path, max_len: usize, owner_uid: u32) -> Result<Vec<u8>, CacheFileError> {
    let (mut buf, st) = safe_path::read_regular_file(path, "read", max_len, Links::OwnerChecked)?;
    if let Some(reason) = not_the_owners_cache(&st, owner_uid) {
        crate::secret::wipe(&mut buf);
        return Err(CacheFileError::UnsafeTarget {
            path: path.to_path_buf(),
            op: "read",
            reason,
        });
    }
    Ok(buf)
}

/// Removes `owner_uid`'s cache at `path` (their server has stopped) if it is
/// theirs: a regular file owned by `owner_uid`, whatever its mode or number
/// of links. Returns whether it removed it.
///
/// The directory is reached through the walk (no symlink on the way) and
/// must be one only root, the owner or the sticky bit guards (as for
/// `install`), else `UnsafeDirectory`; a directory that is not there means
/// there is no cache. The final entry is looked at without following a link
/// and removed by name through the directory's descriptor. Anything else
/// there (nothing, a symlink, a directory, another user's file, an entry
/// root may not even look at, such as another user's FUSE mount) is left
/// alone: `Ok(false)`. Unlinking a name never touches what a link points to
/// or the inode's other names, and in a directory that passes the check only
/// the owner (or root) can swap the entry between our look and the unlink.
pub fn destroy(path: &Path, owner_uid: u32) -> Result<bool, CacheFileError> {
    let split = SplitPath::new(path)?;
    let dir = match open_directory(path, &split, "remove") {
        Ok(dir) => dir,
        Err(err) if err.is_not_found() => return Ok(false),
        Err(err) => return Err(err.into()),
    };
    check_directory(path, &split, dir.as_fd(), owner_uid, "remove")?;
    // Errors at the final entry are whatever its owner made them (a FUSE
    // file system answers as it likes): not ours to report, and not removed.
    let Ok(st) = fstatat(&dir, split.name, AtFlags::AT_SYMLINK_NOFOLLOW) else {
        return Ok(false);
    };
    if file_type(&st) != SFlag::S_IFREG || st.st_uid != owner_uid {
        return Ok(false);
    }
    Ok(unlinkat(&dir, split.name, UnlinkatFlags::NoRemoveDir).is_ok())
}

/// Only the final directory is checked: every later step goes through its
/// descriptor, so only those who can add, remove or rename entries in it can
/// interfere, and they must be root, the cache owner, or held back by the
/// sticky bit (which stops others from renaming or deleting our files, as in /tmp).
fn check_directory(
    target: &Path,
    split: &SplitPath<'_>,
    dir: BorrowedFd<'_>,
    owner_uid: u32,
    op: &'static str,
) -> Result<(), CacheFileError> {
    let st = fstat(dir).map_err(|e| {
        CacheFileError::io(&split.dir_prefix(split.dirs.len()), "stat directory", e)
    })?;
    let refuse = |reason: String| CacheFileError::UnsafeDirectory {
        path: target.to_path_buf(),
        op,
        dir: split.dir_prefix(split.dirs.len()),
        reason,
    };
    if st.st_uid != 0 && st.st_uid != owner_uid {
        return Err(refuse(format!(
            "is owned by uid {}, not root or the cache owner {owner_uid}",
            st.st_uid
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

/// Why `st`, a regular file (checked by the walk), is not safely
/// `owner_uid`'s own cache, if it is not. These checks are what makes a
/// second name harmless ([`Links::OwnerChecked`]).
fn not_the_owners_cache(st: &FileStat, owner_uid: u32) -> Option<String> {
    if st.st_uid != owner_uid {
        return Some(format!("it is owned by uid {}, not {owner_uid}", st.st_uid));
    }
    // Group or other bits on a cache mean it was not written by pamkrb or
    // libkrb5 (both use 0600) and others may have read the session key.
    let mode = st.st_mode & 0o7777;
    if mode & 0o077 != 0 {
        return Some(format!("it has mode {mode:04o}"));
    }
    None
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
        let temp = sibling_name(target, name, TEMP_MARKER)?;
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
            .filter(|n| n.contains(TEMP_MARKER) && !n.contains(PLANTED_MARKER))
            .collect();
        assert!(temps.is_empty(), "temporary files left behind: {temps:?}");
    }

    /// A file with mode 0600 (std::fs::write gives 0666 less the umask).
    fn write_private(path: &Path, contents: &[u8]) {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .and_then(|mut f| f.write_all(contents))
            .expect("write private file");
    }

    fn report(kind: &str, owner_uid: u32) -> Replaced {
        Replaced {
            kind: kind.to_owned(),
            owner_uid,
            moved_to: None,
        }
    }

    /// `target` is the cache just installed: a new regular file of `owner`,
    /// mode 0600, one link, holding `contents`, and no temporary file is left.
    fn assert_is_the_new_cache(target: &Path, owner: Owner, contents: &[u8]) {
        let meta = std::fs::symlink_metadata(target).expect("lstat the cache");
        assert!(meta.file_type().is_file(), "{:?}", meta.file_type());
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o7777, meta.nlink()),
            (owner.uid, owner.gid, 0o600, 1)
        );
        assert_eq!(std::fs::read(target).unwrap(), contents);
        assert_no_temp_files(target.parent().unwrap());
    }

    /// The file behind a plant kept its content, inode, owner, mode and times.
    fn assert_untouched(path: &Path, before: &std::fs::Metadata, contents: &[u8]) {
        let after = std::fs::metadata(path).expect("stat");
        assert_eq!(std::fs::read(path).unwrap(), contents);
        assert_eq!(
            (after.ino(), after.uid(), after.gid(), after.mode()),
            (before.ino(), before.uid(), before.gid(), before.mode())
        );
        assert_eq!(
            (
                after.mtime(),
                after.mtime_nsec(),
                after.ctime(),
                after.ctime_nsec()
            ),
            (
                before.mtime(),
                before.mtime_nsec(),
                before.ctime(),
                before.ctime_nsec()
            )
        );
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

    /// Tests that need other uids are `#[ignore = "needs root; …"]`, so a plain
    /// `cargo test` lists them as ignored rather than passing them silently;
    /// `make test` (root, in CI) runs them with `--include-ignored`. Run
    /// without root anyway, they fail here, loudly, instead of half-running.
    fn require_root() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test needs root to create files owned by other uids"
        );
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
        assert_eq!(safe_path::unsafe_target(&st, Links::Single), None);
    }

    #[test]
    fn install_creates_file_with_mode_0600_and_content() {
        let dir = TestDir::new();
        let target = dir.path("krb5cc_test");
        install(&target, b"ticket", None, None).expect("install");
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
        install(&target, b"x", Some(me()), None).expect("install");
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
        let replaced = install(&target, b"new", None, None).expect("install");
        assert_eq!(replaced, Some(report("file with mode 0644", me().uid)));
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
    fn install_replaces_symlink_at_target_and_leaves_pointee_alone() {
        let dir = TestDir::new();
        let victim = dir.path("victim");
        std::fs::write(&victim, b"precious").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
        let before = std::fs::metadata(&victim).unwrap();
        let target = dir.path("cc");
        symlink(&victim, &target).unwrap();

        let replaced = install(&target, b"ticket", None, None).expect("install");
        assert_eq!(replaced, Some(report("symbolic link", me().uid)));
        assert_is_the_new_cache(&target, me(), b"ticket");
        assert_untouched(&victim, &before, b"precious");
        assert_eq!(dir.entries(), vec!["cc", "victim"]);
    }

    #[test]
    fn install_replaces_hard_link_at_target_and_leaves_other_name_alone() {
        let dir = TestDir::new();
        let other = dir.path("other");
        std::fs::write(&other, b"other").unwrap();
        std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o600)).unwrap();
        let target = dir.path("cc");
        std::fs::hard_link(&other, &target).unwrap();
        let before = std::fs::metadata(&other).unwrap();

        let replaced = install(&target, b"ticket", None, None).expect("install");
        assert_eq!(replaced, Some(report("hard link", me().uid)));
        assert_is_the_new_cache(&target, me(), b"ticket");
        let after = std::fs::metadata(&other).unwrap();
        assert_eq!((after.ino(), after.nlink()), (before.ino(), 1));
        assert_eq!(std::fs::read(&other).unwrap(), b"other");
        assert_eq!(dir.entries(), vec!["cc", "other"]);
    }

    #[test]
    fn install_moves_a_planted_directory_aside_without_entering_it() {
        let dir = TestDir::new();
        let target = dir.path("cc");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("inside"), b"keep").unwrap();
        symlink("/etc/shadow", target.join("link")).unwrap();
        let before = std::fs::metadata(&target).unwrap();

        let replaced = install(&target, b"ticket", None, None)
            .expect("install")
            .expect("a report");
        assert_eq!(
            (replaced.kind.as_str(), replaced.owner_uid),
            ("directory", me().uid)
        );
        let aside = replaced.moved_to.expect("moved_to");
        assert_eq!(aside.parent(), Some(dir.0.as_path()));
        let aside_name = aside.file_name().unwrap().to_str().unwrap();
        assert!(
            aside_name.starts_with(".cc.pamkrb-planted-")
                && aside_name.len() == ".cc.pamkrb-planted-".len() + 16
                && aside_name[".cc.pamkrb-planted-".len()..]
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit()),
            "{aside_name}"
        );
        assert_is_the_new_cache(&target, me(), b"ticket");
        // The same directory, contents as they were.
        let moved = std::fs::symlink_metadata(&aside).unwrap();
        assert_eq!((moved.ino(), moved.mode()), (before.ino(), before.mode()));
        assert_eq!(entries(&aside), vec!["inside", "link"]);
        assert_eq!(std::fs::read(aside.join("inside")).unwrap(), b"keep");
        assert_eq!(
            std::fs::read_link(aside.join("link")).unwrap(),
            Path::new("/etc/shadow")
        );
        assert_eq!(dir.entries(), vec![aside_name.to_owned(), "cc".to_owned()]);
    }

    #[test]
    fn install_replaces_fifo_at_target_without_hanging() {
        let dir = TestDir::new();
        let target = dir.path("cc");
        nix::unistd::mkfifo(&target, Mode::from_bits_truncate(0o600)).unwrap();
        let t = target.clone();
        let replaced = with_deadline(move || install(&t, b"ticket", None, None)).expect("install");
        assert_eq!(replaced, Some(report("fifo", me().uid)));
        assert_is_the_new_cache(&target, me(), b"ticket");
        assert_eq!(dir.entries(), vec!["cc"]);
    }

    #[test]
    fn install_replaces_socket_at_target() {
        let dir = TestDir::new();
        let target = dir.path("cc");
        let _listener = std::os::unix::net::UnixListener::bind(&target).unwrap();
        let replaced = install(&target, b"ticket", None, None).expect("install");
        assert_eq!(replaced, Some(report("socket", me().uid)));
        assert_is_the_new_cache(&target, me(), b"ticket");
    }

    #[test]
    fn replacing_the_owners_own_cache_reports_nothing() {
        let dir = TestDir::new();
        let target = dir.path("cc");
        assert_eq!(install(&target, b"first", None, None).unwrap(), None);
        assert_eq!(install(&target, b"second", None, None).unwrap(), None);
        assert_is_the_new_cache(&target, me(), b"second");
    }

    #[test]
    fn planted_kinds_are_named() {
        let dir = TestDir::new();
        let file = dir.path("f");
        std::fs::write(&file, b"").unwrap();
        let kind = |mode: u32, owner: u32| {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
            let st = nix::sys::stat::lstat(&file).unwrap();
            planted_kind(&st, owner)
        };
        assert_eq!(kind(0o600, me().uid), None);
        assert_eq!(
            kind(0o644, me().uid).as_deref(),
            Some("file with mode 0644")
        );
        assert_eq!(
            kind(0o400, me().uid).as_deref(),
            Some("file with mode 0400")
        );
        assert_eq!(
            kind(0o600, me().uid + 1).as_deref(),
            Some("file owned by another user")
        );
    }

    #[test]
    fn install_after_the_deadline_installs_nothing() {
        let dir = TestDir::new();
        let target = dir.path("cc");
        let past = Deadline::from_monotonic_secs(0.0);
        let err = install(&target, b"late", None, past).unwrap_err();
        assert!(
            matches!(err, CacheFileError::DeadlinePassed { .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "gave up on {} after the deadline; nothing was installed",
                target.display()
            )
        );
        assert!(dir.entries().is_empty(), "{:?}", dir.entries());

        // An existing cache stays as it was; a plant stays too (nothing moved).
        install(&target, b"current", None, None).unwrap();
        install(&target, b"late", None, past).unwrap_err();
        assert_is_the_new_cache(&target, me(), b"current");
        let planted = dir.path("planted");
        std::fs::create_dir(&planted).unwrap();
        install(&planted, b"late", None, past).unwrap_err();
        assert!(std::fs::symlink_metadata(&planted).unwrap().is_dir());
        assert_eq!(dir.entries(), vec!["cc", "planted"]);

        let future = Some(Deadline::after(Duration::from_secs(3600)));
        install(&target, b"in time", None, future).expect("install before the deadline");
        assert_is_the_new_cache(&target, me(), b"in time");
    }

    #[test]
    fn install_refuses_symlink_in_directory_path() {
        let dir = TestDir::new();
        let real = dir.path("real");
        std::fs::create_dir(&real).unwrap();
        symlink(&real, dir.path("link")).unwrap();
        let target = dir.path("link").join("cc");
        let err = install(&target, b"new", None, None).unwrap_err();
        match &err {
            CacheFileError::Path(SafePathError::SymlinkInPath { component, .. }) => {
                assert_eq!(component, &dir.path("link"))
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(entries(&real).is_empty());
        assert_no_temp_files(&dir.0);

        // A symlink further up (as if /tmp itself were a link) is caught too.
        let target = dir.path("link").join("sub").join("cc");
        std::fs::create_dir(real.join("sub")).unwrap();
        let err = install(&target, b"new", None, None).unwrap_err();
        assert!(
            matches!(
                err,
                CacheFileError::Path(SafePathError::SymlinkInPath { .. })
            ),
            "{err:?}"
        );
        assert!(entries(&real.join("sub")).is_empty());
    }

    #[test]
    fn install_refuses_writable_directory_without_sticky_bit() {
        let dir = TestDir::new();
        let target = dir.path("cc");
        dir.chmod(0o777);
        let err = install(&target, b"new", None, None).unwrap_err();
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
        let err = install(&target, b"new", None, None).unwrap_err();
        assert!(err.to_string().contains("writable by its group"), "{err}");
        assert!(dir.entries().is_empty());
    }

    #[test]
    fn install_accepts_sticky_world_writable_directory() {
        let dir = TestDir::new();
        dir.chmod(0o1777);
        let target = dir.path("cc");
        install(&target, b"ticket", None, None).expect("install into sticky dir");
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
        install(&target, b"ticket", None, None).expect("install");
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
        let err = install(&dir.path(&long), b"x", None, None).unwrap_err();
        assert!(matches!(err, CacheFileError::Io { .. }), "{err:?}");
        assert!(dir.entries().is_empty());
    }

    #[test]
    fn relative_and_malformed_paths_are_rejected() {
        let err = install(Path::new("tmp/krb5cc_1"), b"x", None, None).unwrap_err();
        assert!(
            matches!(err, CacheFileError::Path(SafePathError::NotAbsolute { .. })),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "tmp/krb5cc_1: path must be absolute");
        assert!(matches!(
            read(Path::new("krb5cc_1"), 10, me().uid),
            Err(CacheFileError::Path(SafePathError::NotAbsolute { .. }))
        ));
        for bad in ["/", "/tmp/", "/tmp/.", "/tmp/..", "/tmp/../etc/cc", ""] {
            let err = install(Path::new(bad), b"x", None, None).unwrap_err();
            assert!(
                matches!(
                    err,
                    CacheFileError::Path(
                        SafePathError::InvalidPath { .. } | SafePathError::NotAbsolute { .. }
                    )
                ),
                "{bad:?}: {err:?}"
            );
        }
    }

    #[test]
    fn redundant_slashes_and_dots_in_the_directory_are_fine() {
        let dir = TestDir::new();
        let messy = PathBuf::from(format!("/{}//./cc", dir.0.display()));
        install(&messy, b"ok", None, None).expect("install");
        assert_eq!(read(&dir.path("cc"), 10, me().uid).unwrap(), b"ok");
    }

    #[test]
    fn read_returns_contents_of_regular_file() {
        let dir = TestDir::new();
        let target = dir.path("cc");
        install(&target, b"ticket", None, None).unwrap();
        assert_eq!(read(&target, 6, me().uid).unwrap(), b"ticket");
        assert_eq!(read(&target, 1024, me().uid).unwrap(), b"ticket");
        write_private(&dir.path("empty"), b"");
        assert_eq!(read(&dir.path("empty"), 0, me().uid).unwrap(), b"");
        // No write bit for the owner is fine: only group and other bits count.
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(read(&target, 6, me().uid).unwrap(), b"ticket");
    }

    #[test]
    fn read_refuses_a_cache_of_another_owner() {
        // Owned by us, expected to be someone else's: no chown, so no root needed.
        let dir = TestDir::new();
        let target = dir.path("cc");
        install(&target, b"ticket", None, None).unwrap();
        let err = read(&target, 100, me().uid + 1).unwrap_err();
        assert!(
            matches!(err, CacheFileError::UnsafeTarget { .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "refusing to read {}: it is owned by uid {}, not {}",
                target.display(),
                me().uid,
                me().uid + 1
            )
        );
    }

    #[test]
    fn read_refuses_group_or_other_permission_bits() {
        let dir = TestDir::new();
        let target = dir.path("cc");
        install(&target, b"ticket", None, None).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o610] {
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = read(&target, 100, me().uid).unwrap_err();
            assert!(
                err.to_string()
                    .ends_with(&format!("it has mode {mode:04o}")),
                "{err}"
            );
        }
    }

    #[test]
    fn read_refuses_symlink() {
        let dir = TestDir::new();
        std::fs::write(dir.path("real"), b"secret").unwrap();
        symlink(dir.path("real"), dir.path("cc")).unwrap();
        let err = read(&dir.path("cc"), 100, me().uid).unwrap_err();
        assert!(err.to_string().ends_with("it is a symbolic link"), "{err}");

        symlink(&dir.0, dir.path("dirlink")).unwrap();
        let err = read(&dir.path("dirlink").join("real"), 100, me().uid).unwrap_err();
        assert!(
            matches!(
                err,
                CacheFileError::Path(SafePathError::SymlinkInPath { .. })
            ),
            "{err:?}"
        );
    }

    #[test]
    fn read_refuses_fifo_without_blocking() {
        let dir = TestDir::new();
        let target = dir.path("cc");
        nix::unistd::mkfifo(&target, Mode::from_bits_truncate(0o600)).unwrap();
        let err = with_deadline(move || read(&target, 100, me().uid)).unwrap_err();
        assert!(err.to_string().ends_with("it is a fifo"), "{err}");
    }

    #[test]
    fn read_refuses_a_directory() {
        let dir = TestDir::new();
        std::fs::create_dir(dir.path("d")).unwrap();
        let err = read(&dir.path("d"), 100, me().uid).unwrap_err();
        assert!(err.to_string().ends_with("it is a directory"), "{err}");
    }

    #[test]
    fn read_accepts_a_hard_linked_cache_only_if_it_is_the_owners_alone() {
        // Another user linking the owner's cache (protected_hardlinks=0)
        // must not make it unreadable: the hub would ask for a new sign-in
        // after every renewal.
        let dir = TestDir::new();
        let target = dir.path("cc");
        install(&target, b"ticket", None, None).unwrap();
        std::fs::create_dir(dir.path("elsewhere")).unwrap();
        std::fs::hard_link(&target, dir.path("elsewhere").join("stolen")).unwrap();
        assert_eq!(read(&target, 100, me().uid).unwrap(), b"ticket");
        assert_eq!(
            read(&dir.path("elsewhere").join("stolen"), 100, me().uid).unwrap(),
            b"ticket"
        );
        // Group or other bits, or another owner, are refused as for one name.
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = read(&target, 100, me().uid).unwrap_err();
        assert!(err.to_string().ends_with("it has mode 0640"), "{err}");
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = read(&target, 100, me().uid + 1).unwrap_err();
        assert!(
            matches!(err, CacheFileError::UnsafeTarget { .. }),
            "{err:?}"
        );
        // Installing over it still reports the link as a plant and leaves
        // the other name alone.
        let replaced = install(&target, b"new", None, None).unwrap();
        assert_eq!(replaced, Some(report("hard link", me().uid)));
        assert_eq!(
            std::fs::read(dir.path("elsewhere").join("stolen")).unwrap(),
            b"ticket"
        );
    }

    #[test]
    fn read_refuses_file_larger_than_limit() {
        let dir = TestDir::new();
        let target = dir.path("cc");
        write_private(&target, b"0123456789");
        let err = read(&target, 9, me().uid).unwrap_err();
        match err {
            CacheFileError::Path(SafePathError::TooLarge { size, max_len, .. }) => {
                assert_eq!((size, max_len), (10, 9))
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn read_of_missing_file_is_io_error() {
        let dir = TestDir::new();
        let err = read(&dir.path("nope"), 10, me().uid).unwrap_err();
        match err {
            CacheFileError::Path(SafePathError::Io { source, .. }) => {
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound)
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn destroy_removes_only_the_owners_regular_file() {
        let dir = TestDir::new();
        let uid = me().uid;
        let target = dir.path("cc");
        install(&target, b"ticket", None, None).unwrap();
        assert!(destroy(&target, uid).unwrap());
        assert!(dir.entries().is_empty());
        assert!(!destroy(&target, uid).unwrap(), "nothing left to remove");

        // Any mode and any number of links: only this name goes.
        std::fs::write(&target, b"loose").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::hard_link(&target, dir.path("other-name")).unwrap();
        assert!(destroy(&target, uid).unwrap());
        assert_eq!(dir.entries(), vec!["other-name"]);

        // Another uid's file (as far as this call knows) stays.
        assert!(!destroy(&dir.path("other-name"), uid + 1).unwrap());
        assert_eq!(dir.entries(), vec!["other-name"]);
    }

    #[test]
    fn destroy_leaves_links_directories_and_fifos_alone() {
        let dir = TestDir::new();
        let uid = me().uid;
        write_private(&dir.path("real"), b"ticket");
        symlink(dir.path("real"), dir.path("link")).unwrap();
        assert!(!destroy(&dir.path("link"), uid).unwrap());
        std::fs::create_dir(dir.path("d")).unwrap();
        assert!(!destroy(&dir.path("d"), uid).unwrap());
        nix::unistd::mkfifo(&dir.path("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        assert!(!destroy(&dir.path("fifo"), uid).unwrap());
        assert_eq!(dir.entries(), vec!["d", "fifo", "link", "real"]);
        assert_eq!(std::fs::read(dir.path("real")).unwrap(), b"ticket");
        // A directory that is not there holds no cache.
        assert!(!destroy(&dir.path("gone").join("cc"), uid).unwrap());
    }

    #[test]
    fn destroy_refuses_an_unsafe_way_to_the_cache() {
        let dir = TestDir::new();
        let uid = me().uid;
        std::fs::create_dir(dir.path("real")).unwrap();
        write_private(&dir.path("real").join("cc"), b"ticket");
        symlink(dir.path("real"), dir.path("via")).unwrap();
        let err = destroy(&dir.path("via").join("cc"), uid).unwrap_err();
        assert!(
            matches!(
                err,
                CacheFileError::Path(SafePathError::SymlinkInPath { op: "remove", .. })
            ),
            "{err:?}"
        );
        std::fs::set_permissions(dir.path("real"), std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = destroy(&dir.path("real").join("cc"), uid).unwrap_err();
        assert!(
            err.to_string().starts_with(&format!(
                "refusing to remove {}: directory {} is writable by others",
                dir.path("real").join("cc").display(),
                dir.path("real").display()
            )),
            "{err}"
        );
        assert_eq!(entries(&dir.path("real")), vec!["cc"]);
        assert!(matches!(
            destroy(Path::new("cc"), uid),
            Err(CacheFileError::Path(SafePathError::NotAbsolute { .. }))
        ));
    }

    const NOBODY: Owner = Owner {
        uid: 65534,
        gid: 65534,
    };

    #[test]
    #[ignore = "needs root; make test runs them with --include-ignored"]
    fn root_installs_cache_owned_by_another_user() {
        require_root();
        let dir = TestDir::new();
        let target = dir.path("cc");
        install(&target, b"for nobody", Some(NOBODY), None).expect("install");
        let meta = std::fs::metadata(&target).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (NOBODY.uid, NOBODY.gid));
        assert_eq!(meta.mode() & 0o7777, 0o600);
        assert_eq!(std::fs::read(&target).unwrap(), b"for nobody");

        // Replacing the user's own earlier cache is the normal refresh path.
        install(&target, b"refreshed", Some(NOBODY), None).expect("refresh");
        assert_eq!(std::fs::read(&target).unwrap(), b"refreshed");
        assert_eq!(std::fs::metadata(&target).unwrap().uid(), NOBODY.uid);
    }

    /// Another local user, who plants things at NOBODY's cache path.
    const ATTACKER: u32 = 12345;

    /// A sticky, world-writable directory like /tmp, an entry planted by
    /// ATTACKER at `krb5cc_65534` by `plant`, then root's install for NOBODY.
    /// Returns the directory, the cache path and the report.
    fn plant_then_install(plant: impl FnOnce(&TestDir, &Path)) -> (TestDir, PathBuf, Replaced) {
        require_root();
        let dir = TestDir::new();
        dir.chmod(0o1777);
        let target = dir.path("krb5cc_65534");
        plant(&dir, &target);
        let replaced = install(&target, b"victim's ticket", Some(NOBODY), None)
            .expect("a plant must not refuse the install")
            .expect("the plant must be reported");
        assert_is_the_new_cache(&target, NOBODY, b"victim's ticket");
        (dir, target, replaced)
    }

    fn as_attacker(path: &Path) {
        std::os::unix::fs::lchown(path, Some(ATTACKER), Some(ATTACKER)).expect("lchown");
    }

    /// A root-owned file a symlink plant points at.
    fn precious(dir: &TestDir) -> (PathBuf, std::fs::Metadata) {
        let path = dir.path("precious");
        std::fs::write(&path, b"precious").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        (path.clone(), std::fs::metadata(&path).unwrap())
    }

    #[test]
    #[ignore = "needs root; make test runs them with --include-ignored"]
    fn root_replaces_another_users_symlink_and_leaves_its_target_alone() {
        let mut pointee = None;
        let (_dir, target, replaced) = plant_then_install(|dir, target| {
            let (path, meta) = precious(dir);
            symlink(&path, target).unwrap();
            as_attacker(target);
            pointee = Some((path, meta));
        });
        assert_eq!(replaced, report("symbolic link", ATTACKER));
        let (path, before) = pointee.unwrap();
        assert_untouched(&path, &before, b"precious");
        assert_ne!(std::fs::metadata(&target).unwrap().ino(), before.ino());
    }

    #[test]
    #[ignore = "needs root; make test runs them with --include-ignored"]
    fn root_replaces_a_hard_link_to_the_victims_cache() {
        // With fs.protected_hardlinks=0 the attacker links the victim's cache
        // into a directory of their own; every later renewal used to fail.
        let mut stolen = None;
        let (_dir, _target, replaced) = plant_then_install(|dir, target| {
            install(target, b"old ticket", Some(NOBODY), None).unwrap();
            let theirs = dir.path("attacker");
            std::fs::create_dir(&theirs).unwrap();
            as_attacker(&theirs);
            std::fs::hard_link(target, theirs.join("stolen")).unwrap();
            stolen = Some(theirs.join("stolen"));
        });
        assert_eq!(replaced, report("hard link", NOBODY.uid));
        let stolen = stolen.unwrap();
        let meta = std::fs::metadata(&stolen).unwrap();
        assert_eq!(
            (meta.nlink(), meta.uid(), meta.mode() & 0o7777),
            (1, NOBODY.uid, 0o600)
        );
        assert_eq!(std::fs::read(&stolen).unwrap(), b"old ticket");
    }

    #[test]
    #[ignore = "needs root; make test runs them with --include-ignored"]
    fn root_moves_another_users_directory_aside() {
        let (dir, _target, replaced) = plant_then_install(|_dir, target| {
            std::fs::create_dir(target).unwrap();
            std::fs::write(target.join("inside"), b"theirs").unwrap();
            symlink("/etc/shadow", target.join("link")).unwrap();
            as_attacker(&target.join("inside"));
            as_attacker(&target.join("link"));
            as_attacker(target);
        });
        assert_eq!(
            (replaced.kind.as_str(), replaced.owner_uid),
            ("directory", ATTACKER)
        );
        let aside = replaced.moved_to.expect("moved_to");
        let meta = std::fs::symlink_metadata(&aside).unwrap();
        assert!(meta.is_dir());
        assert_eq!(meta.uid(), ATTACKER);
        assert_eq!(entries(&aside), vec!["inside", "link"]);
        assert_eq!(std::fs::read(aside.join("inside")).unwrap(), b"theirs");
        assert_eq!(
            std::fs::symlink_metadata(aside.join("link")).unwrap().uid(),
            ATTACKER
        );
        assert_eq!(dir.entries().len(), 2);
    }

    #[test]
    #[ignore = "needs root; make test runs them with --include-ignored"]
    fn root_replaces_another_users_fifo() {
        let (_dir, _target, replaced) = plant_then_install(|_dir, target| {
            nix::unistd::mkfifo(target, Mode::from_bits_truncate(0o666)).unwrap();
            as_attacker(target);
        });
        assert_eq!(replaced, report("fifo", ATTACKER));
    }

    #[test]
    #[ignore = "needs root; make test runs them with --include-ignored"]
    fn root_replaces_another_users_socket() {
        let mut listener = None;
        let (_dir, _target, replaced) = plant_then_install(|_dir, target| {
            listener = Some(std::os::unix::net::UnixListener::bind(target).unwrap());
            as_attacker(target);
        });
        assert_eq!(replaced, report("socket", ATTACKER));
    }

    #[test]
    #[ignore = "needs root; make test runs them with --include-ignored"]
    fn root_replaces_a_cache_planted_by_another_user() {
        // A well-formed cache with the attacker's far-expiring ticket: it is
        // replaced, not trusted.
        let (_dir, _target, replaced) = plant_then_install(|_dir, target| {
            write_private(target, b"attacker's ticket");
            as_attacker(target);
        });
        assert_eq!(replaced, report("file owned by another user", ATTACKER));
    }

    #[test]
    #[ignore = "needs root; make test runs them with --include-ignored"]
    fn root_replaces_the_victims_own_file_with_a_wrong_mode() {
        // What `kinit` run by hand with a loose umask, or a copy, leaves.
        let (_dir, _target, replaced) = plant_then_install(|_dir, target| {
            std::fs::write(target, b"loose").unwrap();
            std::fs::set_permissions(target, std::fs::Permissions::from_mode(0o644)).unwrap();
            std::os::unix::fs::chown(target, Some(NOBODY.uid), Some(NOBODY.gid)).unwrap();
        });
        assert_eq!(replaced, report("file with mode 0644", NOBODY.uid));
    }

    #[test]
    #[ignore = "needs root; make test runs them with --include-ignored"]
    fn root_destroys_the_owners_cache_and_never_anothers() {
        require_root();
        let dir = TestDir::new();
        dir.chmod(0o1777);
        let target = dir.path("krb5cc_65534");
        write_private(&target, b"attacker's ticket");
        as_attacker(&target);
        assert!(!destroy(&target, NOBODY.uid).unwrap());
        assert_eq!(std::fs::read(&target).unwrap(), b"attacker's ticket");
        std::fs::remove_file(&target).unwrap();

        install(&target, b"victim's ticket", Some(NOBODY), None).unwrap();
        assert!(destroy(&target, NOBODY.uid).unwrap());
        assert!(dir.entries().is_empty());
    }

    #[test]
    #[ignore = "needs root; make test runs them with --include-ignored"]
    fn root_read_refuses_a_cache_planted_by_another_user() {
        require_root();
        let dir = TestDir::new();
        dir.chmod(0o1777);
        let target = dir.path("krb5cc_65534");
        write_private(&target, b"attacker's ticket");
        as_attacker(&target);
        let err = read(&target, 100, NOBODY.uid).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "refusing to read {}: it is owned by uid {ATTACKER}, not {}",
                target.display(),
                NOBODY.uid
            )
        );
        // The same file is the attacker's own cache to the attacker.
        assert_eq!(read(&target, 100, ATTACKER).unwrap(), b"attacker's ticket");
    }

    #[test]
    #[ignore = "needs root; make test runs them with --include-ignored"]
    fn root_refuses_directory_owned_by_another_user() {
        require_root();
        let dir = TestDir::new();
        nix::unistd::chown(&dir.0, Some(Uid::from_raw(12345)), None).unwrap();
        let err = install(&dir.path("cc"), b"new", Some(NOBODY), None).unwrap_err();
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
        install(&dir.path("cc"), b"ok", Some(NOBODY), None).expect("install into owner's dir");
        assert_eq!(std::fs::metadata(dir.path("cc")).unwrap().uid(), NOBODY.uid);
    }

    /// Environment variable through which the test below hands the child its target.
    const CHILD_TARGET_ENV: &str = "PAMKRB_CACHE_FILE_TEST_CHILD_TARGET";

    #[test]
    #[ignore = "needs root; make test runs them with --include-ignored"]
    fn root_writes_cache_then_user_rewrites_it_unprivileged() {
        require_root();
        let dir = TestDir::new();
        dir.chmod(0o1777);
        let target = dir.path("krb5cc_65534");
        install(&target, b"from root", Some(NOBODY), None).expect("root install");

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
        // Not a test of its own: `--include-ignored` runs it without a target,
        // and there is nothing to check then. The parent asserts on the file
        // the child writes, so a child that returns here cannot fake a pass.
        let Some(target) = std::env::var_os(CHILD_TARGET_ENV) else {
            eprintln!("helper of root_writes_cache_then_user_rewrites_it_unprivileged; nothing to do alone");
            return;
        };
        let target = PathBuf::from(target);
        assert!(!geteuid().is_root());
        assert_eq!(read(&target, 100, me().uid).unwrap(), b"from root");
        assert_eq!(me().uid, NOBODY.uid);
        install(&target, b"from the user", None, None).expect("unprivileged install");
        assert_eq!(read(&target, 100, me().uid).unwrap(), b"from the user");

        // An unprivileged fchown to a group we are not in fails after the
        // temporary file exists: the guard must remove it.
        let dir = target.parent().unwrap();
        let other = dir.join("krb5cc_other");
        let owner = Owner {
            uid: geteuid().as_raw(),
            gid: 0,
        };
        let err = install(&other, b"x", Some(owner), None).unwrap_err();
        assert!(
            err.to_string()
                .contains("set the owner of the temporary file"),
            "{err}"
        );
        assert_eq!(entries(dir), vec!["krb5cc_65534"]);
    }
}
