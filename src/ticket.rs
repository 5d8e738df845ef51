//! Obtaining and inspecting a user's ticket: kinit from the keytab, write
//! the cache safely, read it back cheaply. Glue between `kinit`, `ccache`
//! and `cache_file`.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::cache_file::{self, CacheFileError, Owner, Replaced};
use crate::ccache::{self, CcacheError, TicketInfo};
use crate::deadline::Deadline;
use crate::kinit::{self, KerberosError};

/// Credential caches hold a handful of tickets; anything this large is not
/// a cache pamkrb wrote and is not worth reading on every save.
pub const MAX_CACHE_BYTES: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum TicketError {
    #[error(transparent)]
    Kerberos(#[from] KerberosError),
    #[error(transparent)]
    CacheFile(#[from] CacheFileError),
    #[error("credential cache {path}: {source}")]
    Format { path: String, source: CcacheError },
    #[error("keytab {path}: {reason}")]
    Keytab { path: String, reason: String },
    /// The caller stopped waiting (its `kdc_timeout`) and has already told
    /// the user the login failed: installing a ticket now would contradict it.
    #[error("gave up on {path} after the deadline (kdc_timeout) {when}; nothing was installed")]
    DeadlinePassed { path: String, when: &'static str },
}

/// Where the ticket comes from and where it goes.
pub struct Acquisition<'a> {
    pub principal: &'a str,
    pub keytab: &'a Path,
    pub cache: &'a Path,
    /// Owner of the written cache; `None` for the calling user.
    pub owner: Option<Owner>,
    pub lifetime: Option<u32>,
    pub renew_lifetime: Option<u32>,
    /// Install nothing once this has passed: checked before the KDC is
    /// contacted and again just before the cache is renamed into place.
    pub deadline: Option<Deadline>,
}

/// What `obtain` installed, and what it replaced to do so.
#[derive(Debug)]
pub struct Installation {
    pub ticket: TicketInfo,
    /// Something other than the owner's own cache that was at the path (a
    /// plant, or a cache left by another tool with the wrong owner or mode).
    pub replaced: Option<Replaced>,
}

/// Gets a fresh ticket from the keytab and atomically replaces the cache
/// with it. Blocks on the KDC.
pub fn obtain(request: &Acquisition<'_>) -> Result<Installation, TicketError> {
    let gave_up = |when| TicketError::DeadlinePassed {
        path: request.cache.display().to_string(),
        when,
    };
    if request.deadline.is_some_and(|d| d.has_passed()) {
        return Err(gave_up("before contacting the KDC"));
    }
    let keytab = open_keytab(request.keytab)?;
    // libkrb5 opens keytabs by name. Handing it our already opened, checked
    // descriptor through /proc means a keytab path the user controls is
    // resolved exactly once, by us, without following a final symlink and
    // without blocking on a planted fifo.
    let keytab_name = format!("FILE:/proc/self/fd/{}", keytab.as_raw_fd());
    let cache = kinit::kinit_keytab(&kinit::TicketRequest {
        principal: request.principal,
        keytab: &keytab_name,
        lifetime: request.lifetime,
        renew_lifetime: request.renew_lifetime,
    })
    .map_err(|err| describe_keytab(err, request.keytab))?;
    drop(keytab);
    let info = cache.ticket_info().map_err(|source| TicketError::Format {
        path: request.cache.display().to_string(),
        source,
    })?;
    // The serialized cache holds the session key: wipe our copy once written.
    let mut bytes = ccache::serialize(&cache);
    let installed = cache_file::install(request.cache, &bytes, request.owner, request.deadline);
    crate::secret::wipe(&mut bytes);
    let replaced = installed.map_err(|err| match err {
        CacheFileError::DeadlinePassed { .. } => gave_up("after the KDC answered"),
        other => TicketError::CacheFile(other),
    })?;
    log::debug!(
        "installed a ticket for {} in {}, valid until {}",
        info.principal,
        request.cache.display(),
        info.expires_at
    );
    Ok(Installation {
        ticket: info,
        replaced,
    })
}

/// Reads `owner_uid`'s cache and returns its TGT's times. No KDC, no krb5
/// context: a couple of syscalls and a parse. A cache not owned by
/// `owner_uid`, or readable by others, is an error, never a fresh ticket.
pub fn inspect(cache: &Path, owner_uid: u32) -> Result<TicketInfo, TicketError> {
    let bytes = cache_file::read(cache, MAX_CACHE_BYTES, owner_uid)?;
    ccache::inspect_bytes(&bytes).map_err(|source| TicketError::Format {
        path: cache.display().to_string(),
        source,
    })
}

fn open_keytab(path: &Path) -> Result<File, TicketError> {
    let fail = |reason: String| TicketError::Keytab {
        path: path.display().to_string(),
        reason,
    };
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(path)
        .map_err(|err| match err.raw_os_error() {
            Some(libc::ELOOP) => fail("is a symbolic link; refusing to follow it".into()),
            Some(libc::ENOENT) => fail("does not exist".into()),
            _ => fail(err.to_string()),
        })?;
    let meta = file.metadata().map_err(|err| fail(err.to_string()))?;
    if !meta.file_type().is_file() {
        return Err(fail("is not a regular file".into()));
    }
    if meta.size() == 0 {
        return Err(fail("is empty".into()));
    }
    Ok(file)
}

/// KDC_ERR_PREAUTH_FAILED and KRB5KRB_AP_ERR_BAD_INTEGRITY: the key in the
/// keytab is not the principal's current key.
const STALE_KEY_CODES: [i32; 2] = [-1_765_328_360, -1_765_328_353];

/// libkrb5 names the keytab by its /proc alias; put the real path back, and
/// say what the admin must do when the keytab's key is out of date (libkrb5
/// only says "Preauthentication failed" or "Decrypt integrity check failed").
fn describe_keytab(err: KerberosError, path: &Path) -> KerberosError {
    let shown = path.display().to_string();
    let restore = |text: String| replace_fd_alias(&text, &shown);
    match err {
        KerberosError::Library {
            action,
            code,
            message,
        } => {
            let mut message = restore(message);
            if STALE_KEY_CODES.contains(&code) {
                message.push_str(&format!(
                    "; the key in {shown} does not match the KDC's current key version \
                     (kvno): the principal was re-keyed after the keytab was written. \
                     Export a fresh keytab (kadmin: ktadd -norandkey)"
                ));
            }
            KerberosError::Library {
                action: restore(action),
                code,
                message,
            }
        }
        other => other,
    }
}

fn replace_fd_alias(text: &str, shown: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("/proc/self/fd/") {
        let prefix = rest[..start]
            .strip_suffix("FILE:")
            .unwrap_or(&rest[..start]);
        out.push_str(prefix);
        out.push_str(shown);
        let after = &rest[start + "/proc/self/fd/".len()..];
        rest = after.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_alias_is_replaced_by_the_real_path() {
        assert_eq!(
            replace_fd_alias(
                "Key table file 'FILE:/proc/self/fd/12' not found",
                "/home/a/a.keytab"
            ),
            "Key table file '/home/a/a.keytab' not found"
        );
        assert_eq!(replace_fd_alias("/proc/self/fd/3", "/k"), "/k");
        assert_eq!(replace_fd_alias("no alias", "/k"), "no alias");
    }

    #[test]
    fn a_passed_deadline_stops_before_the_kdc_and_installs_nothing() {
        let dir = std::env::temp_dir().join(format!("pamkrb-deadline-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cache = dir.join("cc");
        let err = obtain(&Acquisition {
            principal: "a@NO.SUCH.REALM",
            // Not even opened: the deadline is checked first.
            keytab: Path::new("/nonexistent.keytab"),
            cache: &cache,
            owner: None,
            lifetime: None,
            renew_lifetime: None,
            deadline: Deadline::from_monotonic_secs(0.0),
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "gave up on {} after the deadline (kdc_timeout) before contacting the KDC; \
                 nothing was installed",
                cache.display()
            )
        );
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn keytab_symlink_and_fifo_are_refused() {
        let dir = std::env::temp_dir().join(format!("pamkrb-kt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let link = dir.join("link.keytab");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink("/etc/hostname", &link).unwrap();
        let err = open_keytab(&link).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        let fifo = dir.join("fifo.keytab");
        let _ = std::fs::remove_file(&fifo);
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let err = open_keytab(&fifo).unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
        let err = open_keytab(&dir.join("missing")).unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
