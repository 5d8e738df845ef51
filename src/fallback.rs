//! Where a cache goes when its own path cannot be written.
//!
//! Another local user can make `/tmp/krb5cc_<uid>` unwritable even for root:
//! create it as a directory and mount their own FUSE file system on it
//! (bindfs without allow_other). Root then gets EACCES looking at the entry
//! and EBUSY renaming over it or moving it aside, and `cache_file::install`
//! fails. Failing the login would let any local user lock a victim out, so
//! the caller names a fallback (`/run/pamkrb/<uid>/krb5cc`, in a directory
//! only root and the owner control) and the same bytes go there instead: one
//! KDC request, whichever path is written. The caller learns which path it
//! was, and why the usual one was not, from [`Installed`].

use std::path::{Path, PathBuf};

use crate::cache_file::{self, CacheFileError, Owner, Replaced};
use crate::deadline::Deadline;
use crate::private_dir;

/// Where `install` wrote the cache, and what it replaced there.
#[derive(Debug)]
pub struct Installed {
    /// The path written: the cache path, or the fallback.
    pub path: PathBuf,
    /// What was replaced at `path` (see [`Replaced`]).
    pub replaced: Option<Replaced>,
    /// Why the cache path was not written, when `path` is the fallback.
    pub fallback_reason: Option<String>,
}

/// Installs `contents` at `target` as [`cache_file::install`] does; when that
/// fails at the final entry (where another local user can interfere) and
/// `fallback` is given, makes sure the fallback's directory is the owner's private
/// directory (see [`private_dir::ensure_parent`]) and installs there instead.
///
/// When the fallback fails too, the error is [`CacheFileError::FallbackFailed`]
/// naming both failures; a deadline that passes on the way is
/// `DeadlinePassed`, whichever path it stopped.
pub fn install(
    target: &Path,
    fallback: Option<&Path>,
    contents: &[u8],
    owner: Option<Owner>,
    deadline: Option<Deadline>,
) -> Result<Installed, CacheFileError> {
    let owner = owner.unwrap_or_else(Owner::caller);
    install_with(target, fallback, owner, |path| {
        cache_file::install(path, contents, Some(owner), deadline)
    })
}

/// `install` with the writing step given: the tests inject failures here.
fn install_with(
    target: &Path,
    fallback: Option<&Path>,
    owner: Owner,
    write: impl Fn(&Path) -> Result<Option<Replaced>, CacheFileError>,
) -> Result<Installed, CacheFileError> {
    let primary = match write(target) {
        Ok(replaced) => {
            return Ok(Installed {
                path: target.to_path_buf(),
                replaced,
                fallback_reason: None,
            })
        }
        Err(err) => err,
    };
    let Some(fallback) = fallback.filter(|f| *f != target && may_fall_back(&primary)) else {
        return Err(primary);
    };
    match private_dir::ensure_parent(fallback, owner).and_then(|()| write(fallback)) {
        Ok(replaced) => Ok(Installed {
            path: fallback.to_path_buf(),
            replaced,
            fallback_reason: Some(primary.to_string()),
        }),
        Err(late @ CacheFileError::DeadlinePassed { .. }) => Err(late),
        Err(err) => Err(CacheFileError::FallbackFailed {
            primary: Box::new(primary),
            fallback: Box::new(err),
        }),
    }
}

/// Whether a failure at the cache path may send the cache to the fallback.
///
/// Every failure once the directory has been reached and found safe, at any
/// step: the final entry is where another user interferes in a shared
/// directory like /tmp (a FUSE mount: EACCES, EBUSY; a directory that keeps
/// coming back; /tmp filled up), and a failure we cannot tell from their
/// doing must not lock the owner out. Not a failure of the path or the
/// directories on the way (`Path`, `UnsafeDirectory`): those are the admin's
/// configuration (a template into a directory others can write, a missing
/// directory), refused so the admin sees and fixes it rather than every
/// cache quietly moving. Not a passed deadline: the caller has stopped waiting.
fn may_fall_back(err: &CacheFileError) -> bool {
    match err {
        CacheFileError::Io { .. } | CacheFileError::UnsafeTarget { .. } => true,
        CacheFileError::Path(_)
        | CacheFileError::UnsafeDirectory { .. }
        | CacheFileError::DeadlinePassed { .. }
        | CacheFileError::FallbackFailed { .. } => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safe_path::SafePathError;
    use nix::errno::Errno;
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

    struct TestDir(PathBuf);

    impl TestDir {
        fn new() -> Self {
            TestDir(nix::unistd::mkdtemp("/tmp/pamkrb-fallback-XXXXXX").expect("mkdtemp"))
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

    /// `<dir>/run/<uid>/krb5cc`, with `<dir>/run` made 0755 beforehand
    /// unless `make_shared` is false (only root may create it).
    fn fallback_in(dir: &TestDir, owner: Owner, make_shared: bool) -> PathBuf {
        let shared = dir.path("run");
        if make_shared {
            std::fs::create_dir(&shared).unwrap();
            std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        shared.join(owner.uid.to_string()).join("krb5cc")
    }

    fn owner_and_mode(path: &Path) -> (u32, u32, u32) {
        let meta = std::fs::symlink_metadata(path).expect("lstat");
        (meta.uid(), meta.gid(), meta.mode() & 0o7777)
    }

    /// What a FUSE mount at the cache path makes `cache_file::install` return.
    fn busy(path: &Path) -> CacheFileError {
        CacheFileError::io(path, "move aside the directory planted at", Errno::EBUSY)
    }

    /// Writes the cache as `install` does, except at `broken`, where it
    /// fails with `failure`.
    fn failing_at(
        broken: PathBuf,
        failure: impl Fn(&Path) -> CacheFileError,
    ) -> impl Fn(&Path) -> Result<Option<Replaced>, CacheFileError> {
        move |path| {
            if path == broken {
                return Err(failure(path));
            }
            cache_file::install(path, b"ticket", None, None)
        }
    }

    #[test]
    fn a_user_caused_failure_installs_at_the_fallback() {
        let dir = TestDir::new();
        let me = Owner::caller();
        let target = dir.path("krb5cc");
        let fallback = fallback_in(&dir, me, true);
        let installed = install_with(
            &target,
            Some(&fallback),
            me,
            failing_at(target.clone(), busy),
        )
        .unwrap();
        assert_eq!(installed.path, fallback);
        assert_eq!(installed.replaced, None);
        assert_eq!(
            installed.fallback_reason.as_deref(),
            Some(busy(&target).to_string().as_str())
        );
        assert_eq!(std::fs::read(&fallback).unwrap(), b"ticket");
        assert_eq!(owner_and_mode(&fallback), (me.uid, me.gid, 0o600));
        assert_eq!(
            owner_and_mode(fallback.parent().unwrap()),
            (me.uid, me.gid, 0o700)
        );
        assert!(!target.exists());

        // Next time the usual path works again, and is used.
        let again = install(&target, Some(&fallback), b"ticket", None, None).unwrap();
        assert_eq!((again.path, again.fallback_reason), (target, None));
    }

    #[test]
    fn every_user_caused_failure_falls_back() {
        let dir = TestDir::new();
        let me = Owner::caller();
        let target = dir.path("krb5cc");
        let fallback = fallback_in(&dir, me, true);
        let failures: Vec<fn(&Path) -> CacheFileError> = vec![
            |p| CacheFileError::io(p, "stat", Errno::EACCES),
            |p| CacheFileError::io(p, "rename the temporary file onto", Errno::EBUSY),
            |p| CacheFileError::io(p, "write the temporary file for", Errno::ENOSPC),
            |p| {
                CacheFileError::io(
                    p,
                    "rename the temporary file onto (a directory kept reappearing at)",
                    Errno::EISDIR,
                )
            },
            |p| CacheFileError::io(p, "create a temporary file next to", Errno::EACCES),
            |p| CacheFileError::UnsafeTarget {
                path: p.to_path_buf(),
                op: "write",
                reason: "it is a mount point".to_owned(),
            },
        ];
        for failure in failures {
            let installed = install_with(
                &target,
                Some(&fallback),
                me,
                failing_at(target.clone(), failure),
            )
            .unwrap();
            assert_eq!(installed.path, fallback);
            assert_eq!(
                installed.fallback_reason,
                Some(failure(&target).to_string())
            );
        }
    }

    #[test]
    fn a_deadline_or_a_misconfigured_path_does_not_fall_back() {
        let dir = TestDir::new();
        let me = Owner::caller();
        let target = dir.path("krb5cc");
        let fallback = fallback_in(&dir, me, true);
        let past = Deadline::from_monotonic_secs(0.0);
        let err = install(&target, Some(&fallback), b"late", None, past).unwrap_err();
        assert!(
            matches!(err, CacheFileError::DeadlinePassed { .. }),
            "{err:?}"
        );
        for bad in ["krb5cc", "/tmp/..", "/tmp/cc/"] {
            let err = install(Path::new(bad), Some(&fallback), b"x", None, None).unwrap_err();
            assert!(matches!(err, CacheFileError::Path(_)), "{bad}: {err:?}");
        }
        // A directory on the way that is missing, a symlink, or open to others.
        let missing = dir.path("gone").join("cc");
        let err = install(&missing, Some(&fallback), b"x", None, None).unwrap_err();
        assert!(
            matches!(&err, CacheFileError::Path(e) if e.is_not_found()),
            "{err:?}"
        );
        std::fs::create_dir(dir.path("real")).unwrap();
        symlink(dir.path("real"), dir.path("via")).unwrap();
        let err = install(
            &dir.path("via").join("cc"),
            Some(&fallback),
            b"x",
            None,
            None,
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                CacheFileError::Path(SafePathError::SymlinkInPath { .. })
            ),
            "{err:?}"
        );
        std::fs::set_permissions(dir.path("real"), std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = install(
            &dir.path("real").join("cc"),
            Some(&fallback),
            b"x",
            None,
            None,
        )
        .unwrap_err();
        assert!(
            matches!(err, CacheFileError::UnsafeDirectory { .. }),
            "{err:?}"
        );
        // Nothing was created for the fallback.
        assert_eq!(std::fs::read_dir(dir.path("run")).unwrap().count(), 0);
    }

    #[test]
    fn without_a_fallback_the_error_is_the_caches() {
        let dir = TestDir::new();
        let target = dir.path("krb5cc");
        let err = install_with(
            &target,
            None,
            Owner::caller(),
            failing_at(target.clone(), busy),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), busy(&target).to_string());
        // A fallback equal to the cache path is no second chance either.
        let err = install_with(
            &target,
            Some(&target),
            Owner::caller(),
            failing_at(target.clone(), busy),
        )
        .unwrap_err();
        assert!(matches!(err, CacheFileError::Io { .. }), "{err:?}");
    }

    #[test]
    fn a_failing_fallback_reports_both_failures() {
        let dir = TestDir::new();
        let me = Owner::caller();
        let target = dir.path("krb5cc");
        let fallback = fallback_in(&dir, me, true);
        // Anyone could rename the per-user directory in a world-writable one.
        std::fs::set_permissions(dir.path("run"), std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = install_with(
            &target,
            Some(&fallback),
            me,
            failing_at(target.clone(), busy),
        )
        .unwrap_err();
        assert!(
            matches!(err, CacheFileError::FallbackFailed { .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "{}; the fallback failed too: refusing to write {}: directory {} has mode \
                 0777: writable by others than {}",
                busy(&target),
                fallback.display(),
                dir.path("run").display(),
                if me.uid == 0 { "root" } else { "root or us" },
            )
        );
        assert_eq!(std::fs::read_dir(dir.path("run")).unwrap().count(), 0);
    }

    #[test]
    fn a_symlink_on_the_way_to_the_fallback_is_refused() {
        let dir = TestDir::new();
        let me = Owner::caller();
        let target = dir.path("krb5cc");
        std::fs::create_dir(dir.path("real")).unwrap();
        symlink(dir.path("real"), dir.path("link")).unwrap();
        let fallback = dir.path("link").join("run").join("1").join("krb5cc");
        let err = install_with(
            &target,
            Some(&fallback),
            me,
            failing_at(target.clone(), busy),
        )
        .unwrap_err();
        let CacheFileError::FallbackFailed { fallback: why, .. } = err else {
            panic!("{err:?}")
        };
        assert!(
            matches!(
                *why,
                CacheFileError::Path(SafePathError::SymlinkInPath { .. })
            ),
            "{why:?}"
        );
        assert_eq!(std::fs::read_dir(dir.path("real")).unwrap().count(), 0);
    }

    const NOBODY: Owner = Owner {
        uid: 65534,
        gid: 65534,
    };

    fn require_root() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test needs root to create files owned by other uids"
        );
    }

    /// Runs `f` on a thread of its own in a private mount namespace (the rest
    /// of the test process, and the host, never see its mounts; they go when
    /// the thread ends). unshare(CLONE_NEWNS) unshares the calling thread's
    /// file system information only, so this works in a threaded process.
    fn in_private_mount_namespace<T: Send>(f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    // SAFETY: unshare takes only flags and changes this
                    // thread's namespaces, which no Rust object refers to.
                    let rc = unsafe { libc::unshare(libc::CLONE_NEWNS) };
                    Errno::result(rc).expect("unshare(CLONE_NEWNS)");
                    // SAFETY: the strings are NUL-terminated literals; null
                    // source, type and data are allowed for a propagation change.
                    let rc = unsafe {
                        libc::mount(
                            std::ptr::null(),
                            c"/".as_ptr(),
                            std::ptr::null(),
                            libc::MS_REC | libc::MS_PRIVATE,
                            std::ptr::null(),
                        )
                    };
                    Errno::result(rc).expect("make / private");
                    f()
                })
                .join()
                .expect("thread in the mount namespace panicked")
        })
    }

    fn mount_tmpfs(at: &Path) {
        let at = std::ffi::CString::new(at.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: all strings are NUL-terminated and outlive the call; tmpfs
        // takes a null data pointer.
        let rc = unsafe {
            libc::mount(
                c"pamkrb-test".as_ptr(),
                at.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        Errno::result(rc).expect("mount tmpfs");
    }

    #[test]
    #[ignore = "needs root; make test runs them with --include-ignored"]
    fn a_mount_point_at_the_cache_path_falls_back() {
        // What a user's FUSE mount on /tmp/krb5cc_<uid> does to root: the
        // directory cannot be renamed over or moved aside (EBUSY).
        require_root();
        let dir = TestDir::new();
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let target = dir.path("krb5cc_65534");
        std::fs::create_dir(&target).unwrap();
        let fallback = fallback_in(&dir, NOBODY, false);
        let installed = in_private_mount_namespace(|| {
            mount_tmpfs(&target);
            install(&target, Some(&fallback), b"ticket", Some(NOBODY), None)
        })
        .expect("the fallback must be written");
        assert_eq!(installed.path, fallback);
        let reason = installed.fallback_reason.expect("a reason");
        assert!(
            reason.starts_with(&format!(
                "could not move aside the directory planted at {}: ",
                target.display()
            )) && reason.contains("busy"),
            "{reason}"
        );
        assert_eq!(std::fs::read(&fallback).unwrap(), b"ticket");
        assert_eq!(owner_and_mode(&fallback), (NOBODY.uid, NOBODY.gid, 0o600));
        assert_eq!(
            owner_and_mode(fallback.parent().unwrap()),
            (NOBODY.uid, NOBODY.gid, 0o700)
        );
        assert_eq!(owner_and_mode(&dir.path("run")), (0, 0, 0o755));
        // The mount point stayed where it was, and nothing was left next to it.
        assert!(std::fs::symlink_metadata(&target).unwrap().is_dir());
        assert_eq!(std::fs::read_dir(&dir.0).unwrap().count(), 2);
    }
}
