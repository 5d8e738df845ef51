//! Obtaining and inspecting a user's ticket: kinit from the keytab, write
//! the cache safely, read it back cheaply. Glue between `kinit`, `ccache`
//! and `cache_file`.

use std::path::Path;

use crate::cache_file::{self, CacheFileError, Owner, Replaced};
use crate::ccache::{self, CcacheError, TicketInfo};
use crate::deadline::Deadline;
use crate::keytab::{self, Keytab, KeytabError};
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
    #[error(transparent)]
    Keytab(#[from] KeytabError),
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
    // Read and parsed here, through the safe walk and without a lock; the
    // keys are wiped when `file` is dropped.
    let file = keytab::read(request.keytab)?;
    let shown = request.keytab.display().to_string();
    let cache = kinit::kinit_keytab(&kinit::TicketRequest {
        principal: request.principal,
        keytab: &file.keytab,
        keytab_name: &shown,
        lifetime: request.lifetime,
        renew_lifetime: request.renew_lifetime,
    })
    .map_err(|err| describe_keytab(err, request.keytab, &file.keytab))?;
    drop(file);
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

/// KDC_ERR_PREAUTH_FAILED and KRB5KRB_AP_ERR_BAD_INTEGRITY: the key in the
/// keytab is not the principal's current key.
const STALE_KEY_CODES: [i32; 2] = [-1_765_328_360, -1_765_328_353];

/// Turns "no key for" into a keytab error naming the file and what it
/// holds, and says what the admin must do when the keytab's key is out of
/// date (libkrb5 only says "Preauthentication failed" or "Decrypt integrity
/// check failed").
fn describe_keytab(err: KerberosError, path: &Path, keytab: &Keytab) -> TicketError {
    match err {
        KerberosError::NoKey { principal } => {
            KeytabError::no_key_for(path, &principal, keytab).into()
        }
        KerberosError::Library {
            action,
            code,
            mut message,
        } => {
            if STALE_KEY_CODES.contains(&code) {
                message.push_str(&format!(
                    "; the key in {} does not match the KDC's current key version \
                     (kvno): the principal was re-keyed after the keytab was written. \
                     Export a fresh keytab (kadmin: ktadd -norandkey)",
                    path.display()
                ));
            }
            KerberosError::Library {
                action,
                code,
                message,
            }
            .into()
        }
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/keytab");

    fn multi() -> Keytab {
        keytab::parse(&std::fs::read(Path::new(FIXTURES).join("multi.keytab")).unwrap()).unwrap()
    }

    #[test]
    fn stale_key_gets_the_kvno_hint() {
        let err = KerberosError::Library {
            action: "getting a ticket".into(),
            code: STALE_KEY_CODES[0],
            message: "Preauthentication failed".into(),
        };
        let err = describe_keytab(err, Path::new("/home/a/a.keytab"), &multi()).to_string();
        assert!(
            err.contains("Preauthentication failed; the key in /home/a/a.keytab"),
            "{err}"
        );
        assert!(err.contains("ktadd -norandkey"), "{err}");
        assert!(matches!(
            describe_keytab(
                KerberosError::InvalidArgument("x".into()),
                Path::new("/k"),
                &multi()
            ),
            TicketError::Kerberos(_)
        ));
    }

    #[test]
    fn no_key_is_a_keytab_error() {
        let err = KerberosError::NoKey {
            principal: "carol@FIXTURE.TEST".into(),
        };
        let err = describe_keytab(err, Path::new("/home/c/c.keytab"), &multi());
        assert!(matches!(
            err,
            TicketError::Keytab(KeytabError::NoKeyFor { .. })
        ));
        assert!(err
            .to_string()
            .starts_with("keytab /home/c/c.keytab has no key for carol@FIXTURE.TEST; it holds keys for alice@FIXTURE.TEST"));
    }

    #[test]
    fn obtain_refuses_a_keytab_behind_a_symlinked_directory_before_any_kdc() {
        let dir = nix::unistd::mkdtemp("/tmp/pamkrb-ticket-XXXXXX").unwrap();
        std::os::unix::fs::symlink("/etc", dir.join(".k")).unwrap();
        let cache = dir.join("cc");
        let err = obtain(&Acquisition {
            principal: "a@R",
            keytab: &dir.join(".k").join("krb5.keytab"),
            cache: &cache,
            owner: None,
            lifetime: None,
            renew_lifetime: None,
            deadline: None,
        })
        .unwrap_err();
        assert!(
            matches!(err, TicketError::Keytab(KeytabError::File(_))),
            "{err:?}"
        );
        assert!(err.to_string().contains(".k is a symbolic link"), "{err}");
        assert!(!cache.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_passed_deadline_stops_before_the_kdc_and_installs_nothing() {
        let dir = nix::unistd::mkdtemp("/tmp/pamkrb-deadline-XXXXXX").unwrap();
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
}
