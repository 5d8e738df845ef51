//! The directory a fallback cache goes in, such as `/run/pamkrb/<uid>`: made
//! by root, private to the cache owner.
//!
//! A fallback exists because another local user can make the usual cache path
//! unwritable (a FUSE mount on `/tmp/krb5cc_<uid>`). The fallback must
//! therefore live where no other user can put anything: a per-user directory
//! (mode 0700, the owner's) inside a shared directory only root can write
//! (`/run/pamkrb`, root's, 0755). Both are reached and created through
//! descriptors: the shared directory's parent through the walk of
//! `safe_path` (no symlink anywhere), each directory opened with
//! `O_NOFOLLOW|O_DIRECTORY` relative to its parent, checked with `fstat` and
//! fixed with `fchown`/`fchmod` on the descriptor, never by path.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{fchmod, fstat, fstatat, mkdirat, FileStat, Mode, SFlag};
use nix::unistd::{fchown, geteuid, Gid, Uid};

use crate::cache_file::{CacheFileError, Owner};
use crate::safe_path::{file_type, open_directory, SafePathError, SplitPath};

/// The shared directory (`/run/pamkrb`) when pamkrb creates it.
const SHARED_MODE: u32 = 0o755;
/// The per-user directory (`/run/pamkrb/<uid>`).
const PRIVATE_MODE: u32 = 0o700;

/// Makes sure the directory holding `cache` (`/run/pamkrb/<uid>` for
/// `/run/pamkrb/<uid>/krb5cc`) exists as `owner`'s private directory: owned
/// by them, mode 0700, inside a directory of root's that nobody else can
/// write. Creates the per-user directory if missing, and the shared one too
/// when running as root.
///
/// Refuses (`UnsafeDirectory`) a per-user directory owned by another user
/// and a shared directory owned by anyone but root (or, when not running as
/// root, the calling user: tests and unprivileged use) or writable by group
/// or others. An existing shared directory keeps its mode: an admin may have
/// made it 0711.
pub fn ensure_parent(cache: &Path, owner: Owner) -> Result<(), CacheFileError> {
    let split = SplitPath::new(cache)?;
    let depth = split.dirs.len();
    if depth < 2 {
        return Err(CacheFileError::Path(SafePathError::InvalidPath {
            path: cache.to_path_buf(),
            reason: "a fallback cache must be in a per-user directory inside a directory \
                     of root's, such as /run/pamkrb/<uid>/krb5cc",
        }));
    }
    // The walk's own rules up to the shared directory's parent (`/run`).
    let above = SplitPath {
        dirs: split.dirs[..depth - 2].to_vec(),
        name: split.dirs[depth - 2],
    };
    let parent = open_directory(cache, &above, "write")?;
    let euid = geteuid().as_raw();

    let shared_path = split.dir_prefix(depth - 1);
    let shared = open_or_create(
        cache,
        &shared_path,
        parent.as_fd(),
        split.dirs[depth - 2],
        euid == 0,
    )?;
    let shared_owner = if euid == 0 { "root" } else { "root or us" };
    let st = stat(&shared_path, &shared.fd)?;
    if st.st_uid != 0 && st.st_uid != euid {
        return Err(refuse(
            cache,
            &shared_path,
            format!("is owned by uid {}, not {shared_owner}", st.st_uid),
        ));
    }
    if shared.created {
        set_owner_and_mode(
            &shared_path,
            &shared.fd,
            &st,
            Owner { uid: euid, gid: 0 },
            SHARED_MODE,
        )?;
    } else if st.st_mode & 0o022 != 0 {
        // Whoever can write here can rename the per-user directories.
        return Err(refuse(
            cache,
            &shared_path,
            format!(
                "has mode {:04o}: writable by others than {shared_owner}",
                st.st_mode & 0o7777
            ),
        ));
    }

    let private_path = split.dir_prefix(depth);
    let private = open_or_create(
        cache,
        &private_path,
        shared.fd.as_fd(),
        split.dirs[depth - 1],
        true,
    )?;
    let st = stat(&private_path, &private.fd)?;
    // Root's (just made by us, or by an admin) or the owner's own: anyone
    // else's is not a place to hand the owner's ticket to.
    if st.st_uid != owner.uid && st.st_uid != 0 && st.st_uid != euid {
        return Err(refuse(
            cache,
            &private_path,
            format!(
                "is owned by uid {}, not the cache owner {} or root",
                st.st_uid, owner.uid
            ),
        ));
    }
    set_owner_and_mode(&private_path, &private.fd, &st, owner, PRIVATE_MODE)
}

struct OpenedDir {
    fd: OwnedFd,
    created: bool,
}

/// Opens the directory `name` in `parent` without following a link; when it
/// is missing and `create` is set, makes it first (mode 0700 until fixed on
/// the descriptor, so it is never more open than meant, whatever the umask).
fn open_or_create(
    cache: &Path,
    path: &Path,
    parent: BorrowedFd<'_>,
    name: &OsStr,
    create: bool,
) -> Result<OpenedDir, CacheFileError> {
    // Not O_PATH: fchown and fchmod need a real descriptor.
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut created = false;
    loop {
        match openat(parent, name, flags, Mode::empty()) {
            Ok(fd) => return Ok(OpenedDir { fd, created }),
            Err(Errno::ENOENT) if create && !created => {
                match mkdirat(parent, name, Mode::from_bits_truncate(0o700)) {
                    // Someone (another hub thread) made it first: use theirs,
                    // checked like any existing one.
                    Ok(()) => created = true,
                    Err(Errno::EEXIST) => return open_existing(path, parent, name, flags),
                    Err(e) => return Err(CacheFileError::io(path, "create directory", e)),
                }
            }
            // O_NOFOLLOW|O_DIRECTORY fails a symlink with ENOTDIR or ELOOP.
            Err(Errno::ELOOP | Errno::ENOTDIR) => {
                let symlink = fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW)
                    .is_ok_and(|st| file_type(&st) == SFlag::S_IFLNK);
                let what = if symlink {
                    "is a symbolic link"
                } else {
                    "is not a directory"
                };
                return Err(refuse(cache, path, what.to_owned()));
            }
            Err(e) => return Err(CacheFileError::io(path, "open directory", e)),
        }
    }
}

fn open_existing(
    path: &Path,
    parent: BorrowedFd<'_>,
    name: &OsStr,
    flags: OFlag,
) -> Result<OpenedDir, CacheFileError> {
    openat(parent, name, flags, Mode::empty())
        .map(|fd| OpenedDir { fd, created: false })
        .map_err(|e| CacheFileError::io(path, "open directory", e))
}

fn stat(path: &Path, fd: &OwnedFd) -> Result<FileStat, CacheFileError> {
    fstat(fd).map_err(|e| CacheFileError::io(path, "stat directory", e))
}

fn set_owner_and_mode(
    path: &Path,
    fd: &OwnedFd,
    st: &FileStat,
    owner: Owner,
    mode: u32,
) -> Result<(), CacheFileError> {
    // fchown only when something changes: it is a privileged call, and an
    // unprivileged caller fixing its own directory has nothing to change.
    if st.st_uid != owner.uid || st.st_gid != owner.gid {
        fchown(
            fd,
            Some(Uid::from_raw(owner.uid)),
            Some(Gid::from_raw(owner.gid)),
        )
        .map_err(|e| CacheFileError::io(path, "set the owner of directory", e))?;
    }
    if st.st_mode & 0o7777 != mode {
        fchmod(fd, Mode::from_bits_truncate(mode))
            .map_err(|e| CacheFileError::io(path, "set the mode of directory", e))?;
    }
    Ok(())
}

fn refuse(cache: &Path, dir: &Path, reason: String) -> CacheFileError {
    CacheFileError::UnsafeDirectory {
        path: cache.to_path_buf(),
        op: "write",
        dir: PathBuf::from(dir),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

    struct TestDir(PathBuf);

    impl TestDir {
        fn new() -> Self {
            TestDir(nix::unistd::mkdtemp("/tmp/pamkrb-privatedir-XXXXXX").expect("mkdtemp"))
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

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn owner_and_mode(path: &Path) -> (u32, u32, u32) {
        let meta = std::fs::symlink_metadata(path).expect("lstat");
        (meta.uid(), meta.gid(), meta.mode() & 0o7777)
    }

    /// `<dir>/run` (0755, made here) and the cache path below it for `owner`.
    fn shared_and_cache(dir: &TestDir, owner: Owner) -> (PathBuf, PathBuf) {
        let shared = dir.path("run");
        std::fs::create_dir(&shared).unwrap();
        chmod(&shared, 0o755);
        let cache = shared.join(owner.uid.to_string()).join("krb5cc");
        (shared, cache)
    }

    #[test]
    fn creates_the_per_user_directory_0700() {
        let dir = TestDir::new();
        let me = Owner::caller();
        let (_shared, cache) = shared_and_cache(&dir, me);
        ensure_parent(&cache, me).unwrap();
        let private = cache.parent().unwrap();
        assert_eq!(owner_and_mode(private), (me.uid, me.gid, 0o700));
        // Again: nothing to do, nothing changes.
        let ino = std::fs::metadata(private).unwrap().ino();
        ensure_parent(&cache, me).unwrap();
        assert_eq!(std::fs::metadata(private).unwrap().ino(), ino);
        // A mode loosened since is tightened again.
        chmod(private, 0o755);
        ensure_parent(&cache, me).unwrap();
        assert_eq!(owner_and_mode(private), (me.uid, me.gid, 0o700));
    }

    #[test]
    fn refuses_a_shared_directory_others_can_write() {
        let dir = TestDir::new();
        let me = Owner::caller();
        let (shared, cache) = shared_and_cache(&dir, me);
        for mode in [0o777, 0o775, 0o1777] {
            chmod(&shared, mode);
            let err = ensure_parent(&cache, me).unwrap_err();
            assert!(
                matches!(err, CacheFileError::UnsafeDirectory { .. }),
                "{err:?}"
            );
            assert!(
                err.to_string()
                    .contains(&format!("has mode {mode:04o}: writable by others")),
                "{err}"
            );
        }
        assert!(!cache.parent().unwrap().exists());
        // An admin's tighter mode is kept.
        chmod(&shared, 0o711);
        ensure_parent(&cache, me).unwrap();
        assert_eq!(owner_and_mode(&shared).2, 0o711);
    }

    #[test]
    fn refuses_links_and_files_where_the_directories_go() {
        let dir = TestDir::new();
        let me = Owner::caller();
        let (shared, cache) = shared_and_cache(&dir, me);
        let private = cache.parent().unwrap();
        std::fs::create_dir(dir.path("elsewhere")).unwrap();
        symlink(dir.path("elsewhere"), private).unwrap();
        let err = ensure_parent(&cache, me).unwrap_err();
        assert!(
            err.to_string().ends_with(&format!(
                "directory {} is a symbolic link",
                private.display()
            )),
            "{err}"
        );
        std::fs::remove_file(private).unwrap();
        std::fs::write(private, b"").unwrap();
        let err = ensure_parent(&cache, me).unwrap_err();
        assert!(err.to_string().ends_with("is not a directory"), "{err}");
        std::fs::remove_file(private).unwrap();

        // The shared directory as a link: refused as itself, not followed.
        std::fs::remove_dir(&shared).unwrap();
        symlink(dir.path("elsewhere"), &shared).unwrap();
        let err = ensure_parent(&cache, me).unwrap_err();
        assert!(
            err.to_string().ends_with(&format!(
                "directory {} is a symbolic link",
                shared.display()
            )),
            "{err}"
        );
        assert_eq!(std::fs::read_dir(dir.path("elsewhere")).unwrap().count(), 0);
    }

    #[test]
    fn a_path_must_have_a_shared_and_a_per_user_directory() {
        for shallow in ["/krb5cc", "/run/krb5cc"] {
            let err = ensure_parent(Path::new(shallow), Owner::caller()).unwrap_err();
            assert!(
                matches!(err, CacheFileError::Path(SafePathError::InvalidPath { .. })),
                "{err:?}"
            );
        }
    }

    const NOBODY: Owner = Owner {
        uid: 65534,
        gid: 65534,
    };
    const ATTACKER: u32 = 12345;

    fn require_root() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test needs root to create files owned by other uids"
        );
    }

    #[test]
    #[ignore = "needs root; make test runs them with --include-ignored"]
    fn root_creates_both_directories() {
        require_root();
        let dir = TestDir::new();
        let shared = dir.path("run").join("pamkrb");
        std::fs::create_dir(dir.path("run")).unwrap();
        let cache = shared.join("65534").join("krb5cc");
        ensure_parent(&cache, NOBODY).unwrap();
        assert_eq!(owner_and_mode(&shared), (0, 0, 0o755));
        assert_eq!(
            owner_and_mode(cache.parent().unwrap()),
            (NOBODY.uid, NOBODY.gid, 0o700)
        );
    }

    #[test]
    #[ignore = "needs root; make test runs them with --include-ignored"]
    fn root_takes_over_its_own_per_user_directory_and_refuses_anothers() {
        require_root();
        let dir = TestDir::new();
        let (shared, cache) = shared_and_cache(&dir, NOBODY);
        let private = cache.parent().unwrap();
        // Made by root (an admin, an earlier run): handed to the owner.
        std::fs::create_dir(private).unwrap();
        chmod(private, 0o755);
        ensure_parent(&cache, NOBODY).unwrap();
        assert_eq!(owner_and_mode(private), (NOBODY.uid, NOBODY.gid, 0o700));

        // Another user's: not a place for NOBODY's ticket.
        std::os::unix::fs::chown(private, Some(ATTACKER), Some(ATTACKER)).unwrap();
        let err = ensure_parent(&cache, NOBODY).unwrap_err();
        assert!(
            err.to_string().ends_with(&format!(
                "directory {} is owned by uid {ATTACKER}, not the cache owner 65534 or root",
                private.display()
            )),
            "{err}"
        );
        assert_eq!(owner_and_mode(private), (ATTACKER, ATTACKER, 0o700));

        // A shared directory of anyone but root is refused before anything.
        std::fs::remove_dir(private).unwrap();
        std::os::unix::fs::chown(&shared, Some(ATTACKER), None).unwrap();
        let err = ensure_parent(&cache, NOBODY).unwrap_err();
        assert!(
            err.to_string()
                .ends_with(&format!("is owned by uid {ATTACKER}, not root")),
            "{err}"
        );
        assert!(!private.exists());
    }
}
