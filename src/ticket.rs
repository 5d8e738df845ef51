//! Obtaining and inspecting a user's ticket: kinit from the keytab or with
//! the user's password, or a renewal of the cache's own TGT, write the cache safely, read it back
//! cheaply, and move a cache's bytes between hosts. Glue between `kinit`,
//! `ccache` and `cache_file`.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::cache_file::{self, CacheFileError, Owner, Replaced};
use crate::ccache::{
    self, CcacheError, Credential, CredentialCache, NotRenewable, Principal, TicketInfo,
};
use crate::deadline::Deadline;
use crate::fallback;
use crate::keytab::{self, Keytab, KeytabError};
use crate::kinit::{self, KerberosError, TicketRequest};
use crate::secret::SecretBytes;

/// Credential caches hold a handful of tickets; anything this large is not
/// a cache pamkrb wrote, and not worth reading, serving or installing.
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
    /// The cache's TGT cannot be renewed (no renewable flag, or already
    /// expired): only a new initial ticket (a keytab or a password) helps.
    #[error(
        "the ticket of {principal} in {path} cannot be renewed: {reason}; a new ticket is needed"
    )]
    NotRenewable {
        path: String,
        principal: String,
        reason: String,
    },
    /// The TGT was renewable, but only until `renew_until`, which has passed.
    #[error(
        "the ticket of {principal} in {path} could be renewed only until {renew_until} \
         (seconds since the epoch), which has passed; a new ticket is needed"
    )]
    RenewalExpired {
        path: String,
        principal: String,
        renew_until: u32,
    },
    /// The cache belongs to another principal than the one asked for.
    #[error("credential cache {path} holds tickets of {found}, not {expected}")]
    WrongPrincipal {
        path: String,
        expected: String,
        found: String,
    },
    /// The cache's TGT has expired: not worth installing.
    #[error(
        "the ticket of {principal} in {path} expired at {expired_at} (seconds since the epoch)"
    )]
    Expired {
        path: String,
        principal: String,
        expired_at: u32,
    },
}

/// Where an initial ticket's key comes from.
pub enum Source<'a> {
    /// A keytab file, read through the safe walk.
    Keytab(&'a Path),
    /// The principal's password: only read (copied into another wiping
    /// buffer for libkrb5), never kept; with the keytab whose key armors
    /// the request (FAST), if any.
    Password(&'a SecretBytes, Option<&'a Path>),
}

/// Where a cache goes, whose it is, and until when it may be installed:
/// what every call that writes a cache ([`obtain`], [`renew`],
/// [`install_raw`]) is told.
#[derive(Debug, Clone, Copy)]
pub struct Destination<'a> {
    pub cache: &'a Path,
    /// Where the cache goes when `cache` cannot be written (see `fallback`).
    pub fallback: Option<&'a Path>,
    /// Owner of the written cache; `None` for the calling user.
    pub owner: Option<Owner>,
    /// Install nothing once this has passed: checked before the KDC is
    /// contacted (or the bytes parsed) and again just before the cache is
    /// renamed into place.
    pub deadline: Option<Deadline>,
}

impl Destination<'_> {
    /// [`TicketError::DeadlinePassed`] for this cache, saying `when`.
    fn gave_up(&self, when: &'static str) -> TicketError {
        TicketError::DeadlinePassed {
            path: self.cache.display().to_string(),
            when,
        }
    }

    /// Fails with [`Destination::gave_up`] if the deadline has passed.
    fn check_deadline(&self, when: &'static str) -> Result<(), TicketError> {
        match self.deadline {
            Some(deadline) if deadline.has_passed() => Err(self.gave_up(when)),
            _ => Ok(()),
        }
    }
}

/// What `obtain` installed, where, and what it replaced to do so.
#[derive(Debug)]
pub struct Installation {
    pub ticket: TicketInfo,
    /// The path written: the cache path asked for, or its fallback.
    pub cache: PathBuf,
    /// Something other than the owner's own cache that was at `cache` (a
    /// plant, or a cache left by another tool with the wrong owner or mode).
    pub replaced: Option<Replaced>,
    /// Why the cache path asked for was not written, when `cache` is the
    /// fallback.
    pub fallback_reason: Option<String>,
    /// When the password expires (seconds since the epoch), as the KDC
    /// reported it with a password ticket; `None` otherwise.
    pub password_expires_at: Option<u32>,
}

/// Gets a fresh initial ticket for `request.principal` from `source` (a
/// keytab, or the user's password: in-process, no prompter) and atomically
/// replaces the cache with it. Blocks on the KDC. A password the KDC does
/// not accept is [`KerberosError::PasswordRejected`]; nothing is installed
/// then.
pub fn obtain(
    request: &TicketRequest<'_>,
    source: Source<'_>,
    destination: &Destination<'_>,
) -> Result<Installation, TicketError> {
    destination.check_deadline("before contacting the KDC")?;
    let (cache, password_expires_at) = match source {
        Source::Keytab(path) => {
            // Read and parsed here, through the safe walk and without a
            // lock; the keys are wiped when `file` is dropped.
            let file = keytab::read(path)?;
            let shown = path.display().to_string();
            let cache = kinit::kinit_keytab(request, &file.keytab, &shown)
                .map_err(|err| describe_keytab(err, path, &file.keytab))?;
            (cache, None)
        }
        Source::Password(password, armor) => {
            // The armor keytab is read like a user's: the same walk, keys
            // wiped on drop, never opened by libkrb5.
            let armor_file = armor.map(keytab::read).transpose()?;
            let shown = armor.map(|path| path.display().to_string());
            let armor = armor_file
                .as_ref()
                .zip(shown.as_deref())
                .map(|(file, name)| kinit::Armor {
                    keytab: &file.keytab,
                    name,
                });
            let issued = kinit::kinit_password(request, password, armor.as_ref())?;
            (issued.cache, issued.password_expires_at)
        }
    };
    let mut installed = install_issued(&cache, destination)?;
    installed.password_expires_at = password_expires_at;
    log::debug!(
        "installed a ticket for {} in {}, valid until {}",
        installed.ticket.principal,
        installed.cache.display(),
        installed.ticket.expires_at
    );
    Ok(installed)
}

/// Installs a cache the KDC has just issued (the tail of [`obtain`] and
/// [`renew`]): a deadline that passes now passed after the KDC answered.
fn install_issued(
    contents: &CredentialCache,
    destination: &Destination<'_>,
) -> Result<Installation, TicketError> {
    install_cache(contents, destination).map_err(|err| match err {
        TicketError::DeadlinePassed { .. } => destination.gave_up("after the KDC answered"),
        other => other,
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

/// Renews the TGT in the cache at `cache` (`kinit -R`) and atomically
/// replaces the cache with the renewed one: a TGS request, no keytab.
///
/// The cache is read through the same checks as [`inspect`] (owned by
/// `owner`'s uid, or the euid when `None`; no group or other bits) and must
/// hold a TGT of `principal` that is renewable and still valid, else
/// [`TicketError::NotRenewable`] or [`TicketError::RenewalExpired`] say that
/// only a new initial ticket will do. Blocks on the KDC; `deadline` as in
/// [`obtain`]. The renewed cache replaces `cache`, or goes to `fallback`
/// when `cache` cannot be written.
pub fn renew(principal: &str, destination: &Destination<'_>) -> Result<Installation, TicketError> {
    destination.check_deadline("before contacting the KDC")?;
    let cache = destination.cache;
    let path = cache.display().to_string();
    let owner_uid = destination
        .owner
        .map_or_else(|| nix::unistd::geteuid().as_raw(), |o| o.uid);
    let current = read_checked(cache, owner_uid)?;
    let expected = kinit::parse_principal(principal)?;
    let tgt = renewable_tgt(&current, &expected, unix_now(), &path)?;
    let renewed = kinit::renew_tgt(&current.default_principal, tgt, &path)?;
    if !renewed.client.same_as(&expected) {
        // A KDC does not rename the client of a renewal; never install one
        // that did under this user's name.
        return Err(TicketError::WrongPrincipal {
            path,
            expected: expected.to_string_lossy(),
            found: ccache::shorten(renewed.client.to_string_lossy()),
        });
    }
    let installed = install_issued(&current.renewed(renewed), destination)?;
    log::debug!(
        "renewed the ticket of {} in {}, now valid until {}",
        installed.ticket.principal,
        installed.cache.display(),
        installed.ticket.expires_at
    );
    Ok(installed)
}

/// The cache at `cache` as raw FILE-cache bytes, for the hub to hand to the
/// user's server: read with the checks of [`inspect`] (owner, mode, links,
/// size) and parsed, so that only a well-formed cache holding a TGT is ever
/// served.
pub fn read_raw(cache: &Path, owner_uid: u32) -> Result<Vec<u8>, TicketError> {
    let bytes = cache_file::read(cache, MAX_CACHE_BYTES, owner_uid)?;
    match ccache::inspect_bytes(&bytes) {
        Ok(_) => Ok(bytes),
        Err(source) => {
            let mut bytes = bytes;
            crate::secret::wipe(&mut bytes);
            Err(TicketError::Format {
                path: cache.display().to_string(),
                source,
            })
        }
    }
}

/// Installs a cache received as raw bytes (from the hub) at `cache`,
/// atomically, owned by `owner` (`None`: the caller), mode 0600.
///
/// `bytes` is untrusted: it must parse as a FILE cache (at most
/// [`MAX_CACHE_BYTES`]), every entry must belong to `principal`, and its
/// TGT must not have expired. What is written is our own serialization of
/// what was parsed, never the input as given. `fallback` as in [`obtain`].
pub fn install_raw(
    bytes: &[u8],
    principal: &str,
    destination: &Destination<'_>,
) -> Result<Installation, TicketError> {
    destination.check_deadline("before installing")?;
    let path = destination.cache.display().to_string();
    let format = |source| TicketError::Format {
        path: path.clone(),
        source,
    };
    if bytes.len() > MAX_CACHE_BYTES {
        return Err(format(CcacheError::TooLarge {
            what: "bytes",
            count: bytes.len() as u64,
            limit: MAX_CACHE_BYTES as u64,
        }));
    }
    let received = ccache::parse(bytes).map_err(format)?;
    let expected = kinit::parse_principal(principal)?;
    check_deliverable(&received, &expected, unix_now(), &path)?;
    install_cache(&received, destination)
}

/// Serializes `contents`, installs it (at the fallback if the cache path
/// cannot be written) and wipes our copy of the bytes.
fn install_cache(
    contents: &CredentialCache,
    destination: &Destination<'_>,
) -> Result<Installation, TicketError> {
    let Destination {
        cache,
        fallback,
        owner,
        deadline,
    } = *destination;
    let info = contents
        .ticket_info()
        .map_err(|source| TicketError::Format {
            path: cache.display().to_string(),
            source,
        })?;
    let mut bytes = ccache::serialize(contents);
    let installed = fallback::install(cache, fallback, &bytes, owner, deadline);
    crate::secret::wipe(&mut bytes);
    let installed = installed.map_err(|err| match err {
        CacheFileError::DeadlinePassed { .. } => destination.gave_up("before installing"),
        other => TicketError::CacheFile(other),
    })?;
    Ok(Installation {
        ticket: info,
        cache: installed.path,
        replaced: installed.replaced,
        fallback_reason: installed.fallback_reason,
        password_expires_at: None,
    })
}

/// Reads and parses the owner's cache; the file's bytes are wiped, the
/// parsed session keys wipe themselves.
fn read_checked(cache: &Path, owner_uid: u32) -> Result<CredentialCache, TicketError> {
    let mut bytes = cache_file::read(cache, MAX_CACHE_BYTES, owner_uid)?;
    let parsed = ccache::parse(&bytes);
    crate::secret::wipe(&mut bytes);
    parsed.map_err(|source| TicketError::Format {
        path: cache.display().to_string(),
        source,
    })
}

/// The cache's TGT, if it is `expected`'s and the KDC would renew it at
/// `now`: renewable flag set, not expired, renewal window still open.
fn renewable_tgt<'c>(
    cache: &'c CredentialCache,
    expected: &Principal,
    now: u32,
    path: &str,
) -> Result<&'c Credential, TicketError> {
    let principal = ccache::shorten(cache.default_principal.to_string_lossy());
    if !cache.default_principal.same_as(expected) {
        return Err(TicketError::WrongPrincipal {
            path: path.to_owned(),
            expected: expected.to_string_lossy(),
            found: principal,
        });
    }
    let Some(tgt) = cache.ticket_granting_ticket() else {
        return Err(TicketError::Format {
            path: path.to_owned(),
            source: CcacheError::NoTicketGrantingTicket { principal },
        });
    };
    match tgt.renewal_at(now) {
        Ok(()) => Ok(tgt),
        Err(NotRenewable::NotIssuedRenewable) => Err(TicketError::NotRenewable {
            path: path.to_owned(),
            principal,
            reason: "it was not issued renewable".to_owned(),
        }),
        Err(NotRenewable::WindowClosed { renew_until }) => Err(TicketError::RenewalExpired {
            path: path.to_owned(),
            principal,
            renew_until,
        }),
        Err(NotRenewable::Expired { expired_at }) => Err(TicketError::NotRenewable {
            path: path.to_owned(),
            principal,
            reason: format!(
                "it expired at {expired_at} (seconds since the epoch), and only a valid ticket \
                 is renewed"
            ),
        }),
    }
}

/// A received cache may be installed as `expected`'s: its default principal
/// and every entry's client are `expected`, and its TGT is valid at `now`.
fn check_deliverable(
    cache: &CredentialCache,
    expected: &Principal,
    now: u32,
    path: &str,
) -> Result<(), TicketError> {
    let stranger = std::iter::once(&cache.default_principal)
        .chain(cache.credentials.iter().map(|cred| &cred.client))
        .find(|client| !client.same_as(expected));
    if let Some(found) = stranger {
        return Err(TicketError::WrongPrincipal {
            path: path.to_owned(),
            expected: expected.to_string_lossy(),
            found: ccache::shorten(found.to_string_lossy()),
        });
    }
    let info = cache.ticket_info().map_err(|source| TicketError::Format {
        path: path.to_owned(),
        source,
    })?;
    if now >= info.expires_at {
        return Err(TicketError::Expired {
            path: path.to_owned(),
            principal: info.principal,
            expired_at: info.expires_at,
        });
    }
    Ok(())
}

/// Seconds since the epoch, as ticket times count them. A clock before 1970
/// or after 2106 reads as the end of time: every ticket then counts as
/// expired, which fails closed.
fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| u32::try_from(d.as_secs()).ok())
        .unwrap_or(u32::MAX)
}

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
            // With a keytab, a key the KDC does not accept is a stale one.
            if kinit::WRONG_KEY_CODES.contains(&code) {
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
            code: kinit::WRONG_KEY_CODES[0],
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
        let err = obtain(
            &request("a@R"),
            Source::Keytab(&dir.join(".k").join("krb5.keytab")),
            &to(&cache),
        )
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
        let err = obtain(
            &request("a@NO.SUCH.REALM"),
            // Not even opened: the deadline is checked first.
            Source::Keytab(Path::new("/nonexistent.keytab")),
            &Destination {
                deadline: Deadline::from_monotonic_secs(0.0),
                ..to(&cache)
            },
        )
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
    fn a_password_obtain_stops_before_the_kdc_on_bad_input_or_a_passed_deadline() {
        let dir = nix::unistd::mkdtemp("/tmp/pamkrb-password-XXXXXX").unwrap();
        let cache = dir.join("cc");
        let attempt = |password: &SecretBytes, deadline| {
            obtain(
                &request("a@NO.SUCH.REALM"),
                Source::Password(password, None),
                &Destination {
                    deadline,
                    ..to(&cache)
                },
            )
            .unwrap_err()
        };
        let err = attempt(
            &SecretBytes::new(b"right".to_vec()),
            Deadline::from_monotonic_secs(0.0),
        );
        assert!(
            matches!(err, TicketError::DeadlinePassed { when, .. } if when == "before contacting the KDC"),
            "{err:?}"
        );
        let err = attempt(&SecretBytes::new(b"a\0b".to_vec()), None);
        assert!(
            matches!(
                err,
                TicketError::Kerberos(KerberosError::InvalidArgument(_))
            ),
            "{err:?}"
        );
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    // -- renewal and raw caches, without a KDC ------------------------------------

    const V4_KINIT_KEYTAB: &[u8] = include_bytes!("../tests/data/ccache/v4-kinit-keytab");
    const V4_RENEWABLE: &[u8] = include_bytes!("../tests/data/ccache/v4-renewable");
    const V4_SERVICE_TICKET: &[u8] = include_bytes!("../tests/data/ccache/v4-service-ticket");
    // tests/data/ccache/README.md: every fixture starts and expires at these.
    const STARTS: u32 = 1_795_697_631;
    const EXPIRES: u32 = 1_795_733_631;
    const RENEW_UNTIL: u32 = 1_795_870_431;

    /// A request for `principal` with the lifetimes left to krb5.conf.
    fn request(principal: &str) -> TicketRequest<'_> {
        TicketRequest {
            principal,
            lifetime: None,
            renew_lifetime: None,
            enterprise: false,
        }
    }

    /// `cache`, no fallback, the caller as owner, no deadline.
    fn to(cache: &Path) -> Destination<'_> {
        Destination {
            cache,
            fallback: None,
            owner: None,
            deadline: None,
        }
    }

    fn alice() -> Principal {
        kinit::parse_principal("alice@FIXTURE.TEST").unwrap()
    }

    /// A fixture whose TGT is valid for another hour (and, when renewable,
    /// renewable for a day): the committed ones expired in November 2026.
    fn fresh(fixture: &[u8]) -> Vec<u8> {
        let mut cache = ccache::parse(fixture).unwrap();
        let now = unix_now();
        for cred in &mut cache.credentials {
            if !cred.is_config_entry() {
                (cred.authtime, cred.starttime, cred.endtime) = (now - 60, now - 60, now + 3600);
                if cred.renew_till != 0 {
                    cred.renew_till = now + 86_400;
                }
            }
        }
        ccache::serialize(&cache)
    }

    struct TempDir(std::path::PathBuf);

    impl TempDir {
        fn new() -> Self {
            TempDir(nix::unistd::mkdtemp("/tmp/pamkrb-raw-XXXXXX").unwrap())
        }

        fn entries(&self) -> usize {
            std::fs::read_dir(&self.0).unwrap().count()
        }

        /// `bytes` at `name`, 0600, as the owner's own cache.
        fn cache(&self, name: &str, bytes: &[u8]) -> std::path::PathBuf {
            use std::os::unix::fs::PermissionsExt;
            let path = self.0.join(name);
            std::fs::write(&path, bytes).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn install_raw_writes_our_serialization_0600() {
        use std::os::unix::fs::MetadataExt;
        let dir = TempDir::new();
        let target = dir.0.join("cc");
        let bytes = fresh(V4_SERVICE_TICKET);
        let installed = install_raw(&bytes, "alice@FIXTURE.TEST", &to(&target)).unwrap();
        assert_eq!(installed.ticket.principal, "alice@FIXTURE.TEST");
        assert!(installed.replaced.is_none());
        assert_eq!(std::fs::read(&target).unwrap(), bytes);
        let st = std::fs::metadata(&target).unwrap();
        assert_eq!(st.mode() & 0o7777, 0o600);
        assert_eq!(st.uid(), nix::unistd::geteuid().as_raw());
        // What was installed is what read_raw serves back.
        assert_eq!(read_raw(&target, st.uid()).unwrap(), bytes);
    }

    #[test]
    fn install_raw_says_where_it_wrote_and_why_there() {
        let dir = TempDir::new();
        let bytes = fresh(V4_SERVICE_TICKET);
        let target = dir.0.join("cc");
        let fallback = dir.0.join("run").join("me").join("krb5cc");
        std::fs::create_dir(dir.0.join("run")).unwrap();
        let installed = install_raw(
            &bytes,
            "alice@FIXTURE.TEST",
            &Destination {
                fallback: Some(&fallback),
                ..to(&target)
            },
        )
        .unwrap();
        assert_eq!((installed.cache, installed.fallback_reason), (target, None));

        // A failure at the final entry (here a name too long for the
        // temporary file next to it): the fallback, one parse.
        let unreachable = dir.0.join("n".repeat(250));
        let installed = install_raw(
            &bytes,
            "alice@FIXTURE.TEST",
            &Destination {
                fallback: Some(&fallback),
                ..to(&unreachable)
            },
        )
        .unwrap();
        assert_eq!(installed.cache, fallback);
        let reason = installed.fallback_reason.unwrap();
        assert!(reason.contains("File name too long"), "{reason}");
        assert_eq!(
            read_raw(&fallback, nix::unistd::geteuid().as_raw()).unwrap(),
            bytes
        );
    }

    #[test]
    fn install_raw_refuses_another_principal() {
        let dir = TempDir::new();
        let target = dir.0.join("cc");
        let err =
            install_raw(&fresh(V4_RENEWABLE), "alice@FIXTURE.TEST", &to(&target)).unwrap_err();
        assert!(
            matches!(&err, TicketError::WrongPrincipal { found, .. } if found == "bob@FIXTURE.TEST"),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .ends_with("holds tickets of bob@FIXTURE.TEST, not alice@FIXTURE.TEST"),
            "{err}"
        );
        // A cache of alice's that smuggles in a ticket of bob's is refused too.
        let mut mixed = ccache::parse(&fresh(V4_SERVICE_TICKET)).unwrap();
        mixed.credentials[3].client.components[0] = b"bob".to_vec();
        let err = install_raw(
            &ccache::serialize(&mixed),
            "alice@FIXTURE.TEST",
            &to(&target),
        )
        .unwrap_err();
        assert!(matches!(err, TicketError::WrongPrincipal { .. }), "{err:?}");
        assert_eq!(dir.entries(), 0);
    }

    #[test]
    fn install_raw_refuses_garbage_and_expired_tickets() {
        let dir = TempDir::new();
        let target = dir.0.join("cc");
        for garbage in [
            &b""[..],
            b"\x05\x04\x00\x00garbage",
            &V4_KINIT_KEYTAB[..500],
        ] {
            let err = install_raw(garbage, "alice@FIXTURE.TEST", &to(&target)).unwrap_err();
            assert!(matches!(err, TicketError::Format { .. }), "{err:?}");
        }
        let huge = vec![0u8; MAX_CACHE_BYTES + 1];
        let err = install_raw(&huge, "alice@FIXTURE.TEST", &to(&target)).unwrap_err();
        assert!(
            err.to_string().contains("more than the limit of 1048576"),
            "{err}"
        );
        // A cache without a TGT (only its configuration entries).
        let mut no_tgt = ccache::parse(V4_KINIT_KEYTAB).unwrap();
        no_tgt.credentials.truncate(2);
        let err = install_raw(
            &ccache::serialize(&no_tgt),
            "alice@FIXTURE.TEST",
            &to(&target),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("holds no ticket-granting ticket"),
            "{err}"
        );
        // The committed fixture expired in November 2026.
        let err = install_raw(V4_KINIT_KEYTAB, "alice@FIXTURE.TEST", &to(&target)).unwrap_err();
        assert!(
            matches!(
                err,
                TicketError::Expired {
                    expired_at: EXPIRES,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(dir.entries(), 0);
    }

    #[test]
    fn install_raw_after_the_deadline_installs_nothing() {
        let dir = TempDir::new();
        let err = install_raw(
            &fresh(V4_KINIT_KEYTAB),
            "alice@FIXTURE.TEST",
            &Destination {
                deadline: Deadline::from_monotonic_secs(0.0),
                ..to(&dir.0.join("cc"))
            },
        )
        .unwrap_err();
        assert!(matches!(err, TicketError::DeadlinePassed { .. }), "{err:?}");
        assert_eq!(dir.entries(), 0);
    }

    #[test]
    fn read_raw_serves_only_a_cache_with_a_tgt() {
        let dir = TempDir::new();
        let uid = nix::unistd::geteuid().as_raw();
        let good = dir.cache("good", V4_RENEWABLE);
        assert_eq!(read_raw(&good, uid).unwrap(), V4_RENEWABLE);
        let bad = dir.cache("bad", b"\x05\x04\x00\x00garbage");
        assert!(matches!(
            read_raw(&bad, uid),
            Err(TicketError::Format { .. })
        ));
        // The owner check of `inspect` applies.
        assert!(matches!(
            read_raw(&good, uid + 1),
            Err(TicketError::CacheFile(CacheFileError::UnsafeTarget { .. }))
        ));
    }

    #[test]
    fn which_tickets_are_renewable() {
        let path = "/cc";
        let bob = kinit::parse_principal("bob@FIXTURE.TEST").unwrap();
        let renewable = ccache::parse(V4_RENEWABLE).unwrap();
        let tgt = renewable_tgt(&renewable, &bob, STARTS + 1, path).unwrap();
        assert!(std::ptr::eq(
            tgt,
            renewable.ticket_granting_ticket().unwrap()
        ));

        let err = renewable_tgt(&renewable, &bob, RENEW_UNTIL, path).unwrap_err();
        assert!(
            matches!(
                err,
                TicketError::RenewalExpired {
                    renew_until: RENEW_UNTIL,
                    ..
                }
            ),
            "{err:?}"
        );
        // Expired but inside the renewal window: the KDC would refuse it.
        let err = renewable_tgt(&renewable, &bob, EXPIRES, path).unwrap_err();
        assert!(matches!(err, TicketError::NotRenewable { .. }), "{err:?}");
        assert!(err.to_string().contains("expired at 1795733631"), "{err}");

        let plain = ccache::parse(V4_KINIT_KEYTAB).unwrap();
        let err = renewable_tgt(&plain, &alice(), STARTS + 1, path).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the ticket of alice@FIXTURE.TEST in /cc cannot be renewed: it was not issued \
             renewable; a new ticket is needed"
        );
        let err = renewable_tgt(&renewable, &alice(), STARTS + 1, path).unwrap_err();
        assert!(matches!(err, TicketError::WrongPrincipal { .. }), "{err:?}");
    }

    #[test]
    fn renew_refuses_a_non_renewable_cache_before_any_kdc() {
        let dir = TempDir::new();
        let before = fresh(V4_KINIT_KEYTAB);
        let cache = dir.cache("cc", &before);
        let err = renew("alice@FIXTURE.TEST", &to(&cache)).unwrap_err();
        assert!(matches!(err, TicketError::NotRenewable { .. }), "{err:?}");
        assert_eq!(std::fs::read(&cache).unwrap(), before);
        assert_eq!(dir.entries(), 1);
        // A cache that is not the caller's is not even parsed.
        let err = renew(
            "alice@FIXTURE.TEST",
            &Destination {
                owner: Some(Owner {
                    uid: nix::unistd::geteuid().as_raw() + 1,
                    gid: 0,
                }),
                ..to(&cache)
            },
        )
        .unwrap_err();
        assert!(matches!(err, TicketError::CacheFile(_)), "{err:?}");
        let err = renew(
            "alice@FIXTURE.TEST",
            &Destination {
                deadline: Deadline::from_monotonic_secs(0.0),
                ..to(&cache)
            },
        )
        .unwrap_err();
        assert!(matches!(err, TicketError::DeadlinePassed { .. }), "{err:?}");
    }

    #[test]
    fn renewal_reaches_the_kdc_lookup_through_the_memory_cache() {
        // No KDC serves FIXTURE.TEST: the renewal fails at the KDC lookup.
        // Had storing the TGT in the memory cache gone wrong, libkrb5 would
        // fail earlier with KRB5_CC_NOTFOUND ("Matching credential not found").
        const KRB5_CC_NOTFOUND: i32 = -1_765_328_243;
        let cache = ccache::parse(&fresh(V4_RENEWABLE)).unwrap();
        let tgt = cache.ticket_granting_ticket().unwrap();
        let err = kinit::renew_tgt(&cache.default_principal, tgt, "/cc").unwrap_err();
        let code = err.code().unwrap();
        assert_ne!(code, KRB5_CC_NOTFOUND, "{err}");
        assert!(
            err.to_string()
                .starts_with("renewing the ticket of bob@FIXTURE.TEST from /cc: "),
            "{err}"
        );
    }
}
