//! The bindings layer: argument conversion, GIL release around blocking
//! work, and the one mapping from native errors to `pamkrb.exceptions`.

use std::path::Path;

use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyTuple};

use crate::cache_file::{Owner, Replaced};
use crate::ccache::{Principal, TicketInfo as NativeTicketInfo};
use crate::deadline::Deadline;
use crate::gssapi::{self, GssError};
use crate::keytab::{self, KeytabError};
use crate::kinit::KerberosError;
use crate::kinit::TicketRequest;
use crate::pam::{self, PamError};
use crate::secret::SecretBytes;
use crate::template::{self, Identity, TemplateError};
use crate::ticket::{self, Destination, Source, TicketError};

mod exceptions {
    pyo3::import_exception!(pamkrb.exceptions, AuthenticationDenied);
    pyo3::import_exception!(pamkrb.exceptions, PAMSystemError);
    pyo3::import_exception!(pamkrb.exceptions, KerberosError);
    pyo3::import_exception!(pamkrb.exceptions, KerberosPasswordRejected);
    pyo3::import_exception!(pamkrb.exceptions, PasswordExpired);
    pyo3::import_exception!(pamkrb.exceptions, AccountRevoked);
    pyo3::import_exception!(pamkrb.exceptions, TicketNotRenewable);
    pyo3::import_exception!(pamkrb.exceptions, CredentialCacheError);
    pyo3::import_exception!(pamkrb.exceptions, TicketFormatError);
    pyo3::import_exception!(pamkrb.exceptions, KeytabError);
    pyo3::import_exception!(pamkrb.exceptions, InvalidUsername);
    pyo3::import_exception!(pamkrb.exceptions, TemplateError);
}

/// Every error the core can return, so that the mapping to Python lives in
/// one `From` impl.
enum NativeError {
    Pam(PamError),
    Ticket(TicketError),
    Template(TemplateError),
}

impl From<PamError> for NativeError {
    fn from(err: PamError) -> Self {
        NativeError::Pam(err)
    }
}

impl From<TicketError> for NativeError {
    fn from(err: TicketError) -> Self {
        NativeError::Ticket(err)
    }
}

impl From<KeytabError> for NativeError {
    fn from(err: KeytabError) -> Self {
        NativeError::Ticket(TicketError::Keytab(err))
    }
}

impl From<TemplateError> for NativeError {
    fn from(err: TemplateError) -> Self {
        NativeError::Template(err)
    }
}

impl From<NativeError> for PyErr {
    fn from(err: NativeError) -> PyErr {
        let message = match &err {
            NativeError::Pam(e) => e.to_string(),
            NativeError::Ticket(e) => e.to_string(),
            NativeError::Template(e) => e.to_string(),
        };
        match err {
            // The PAM code tells a must-change password (12) or an expired
            // account (13) apart from a wrong password, for the message.
            NativeError::Pam(PamError::Denied { code, .. }) => {
                exceptions::AuthenticationDenied::new_err((message, code))
            }
            NativeError::Pam(PamError::InvalidArgument(_)) => {
                exceptions::AuthenticationDenied::new_err(message)
            }
            NativeError::Pam(PamError::System { .. }) => {
                exceptions::PAMSystemError::new_err(message)
            }
            // A wrong password: the user's failure, told apart from a
            // system failure by its class.
            NativeError::Ticket(TicketError::Kerberos(
                e @ KerberosError::PasswordRejected { .. },
            )) => exceptions::KerberosPasswordRejected::new_err((message, e.code())),
            NativeError::Ticket(TicketError::Kerberos(
                e @ KerberosError::PasswordExpired { .. },
            )) => exceptions::PasswordExpired::new_err((message, e.code())),
            NativeError::Ticket(TicketError::Kerberos(
                e @ KerberosError::AccountRevoked { .. },
            )) => exceptions::AccountRevoked::new_err((message, e.code())),
            NativeError::Ticket(TicketError::Kerberos(e)) => {
                exceptions::KerberosError::new_err((message, e.code()))
            }
            // The KDC was too slow for the caller: a Kerberos failure for the
            // admin, without a krb5 error code.
            NativeError::Ticket(TicketError::DeadlinePassed { .. }) => {
                exceptions::KerberosError::new_err((message, None::<i32>))
            }
            NativeError::Ticket(TicketError::Keytab(_)) => {
                exceptions::KeytabError::new_err(message)
            }
            NativeError::Ticket(TicketError::CacheFile(_)) => {
                exceptions::CredentialCacheError::new_err(message)
            }
            // Only a new initial ticket (keytab or password) helps: the caller's
            // cue to fall back to one.
            NativeError::Ticket(
                TicketError::NotRenewable { .. } | TicketError::RenewalExpired { .. },
            ) => exceptions::TicketNotRenewable::new_err((message, None::<i32>)),
            NativeError::Ticket(
                TicketError::Format { .. }
                | TicketError::WrongPrincipal { .. }
                | TicketError::Expired { .. },
            ) => exceptions::TicketFormatError::new_err(message),
            NativeError::Template(TemplateError::InvalidUsername { .. }) => {
                exceptions::InvalidUsername::new_err(message)
            }
            NativeError::Template(_) => exceptions::TemplateError::new_err(message),
        }
    }
}

/// A principal kept beside its string for `is_for`. Equal by
/// [`Principal::same_as`], so it adds nothing to the `==` of the class that
/// holds it (the name type never counts).
struct ParsedPrincipal(Principal);

impl PartialEq for ParsedPrincipal {
    fn eq(&self, other: &Self) -> bool {
        self.0.same_as(&other.0)
    }
}

impl Eq for ParsedPrincipal {}

/// What a credential cache says about its ticket-granting ticket. Times are
/// seconds since the epoch.
#[pyclass(frozen, eq, module = "pamkrb._native")]
#[derive(PartialEq, Eq)]
pub struct TicketInfo {
    #[pyo3(get)]
    principal: String,
    #[pyo3(get)]
    starts_at: u32,
    #[pyo3(get)]
    expires_at: u32,
    #[pyo3(get)]
    renew_until: Option<u32>,
    /// The KDC marked the ticket renewable (flag R): `renew_ticket` can work
    /// until `renew_until`.
    #[pyo3(get)]
    renewable: bool,
    /// `principal` parsed, for `is_for`.
    default_principal: ParsedPrincipal,
}

#[pymethods]
impl TicketInfo {
    /// Whether the ticket is `principal`'s: realm and name components
    /// compared as `krb5_principal_compare` does (the name type does not
    /// count), not the strings.
    fn is_for(&self, principal: &str) -> PyResult<bool> {
        let expected = parse_principal(principal)?;
        Ok(self.default_principal.0.same_as(&expected))
    }

    /// Whether the KDC would renew the ticket at `now` (seconds since the
    /// epoch) with at least `margin` seconds of its renewable life left:
    /// issued renewable (flag R), still valid, renewal window open. The rule
    /// `renew_ticket` applies before it asks the KDC.
    #[pyo3(signature = (now, margin=0.0))]
    fn can_renew(&self, now: f64, margin: f64) -> PyResult<bool> {
        if !(now.is_finite() && now >= 0.0 && margin.is_finite()) {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "now must be a finite, non-negative time.time() value and margin finite",
            ));
        }
        // Ticket times are whole seconds: `now >= t` is `floor(now) >= t`.
        // After 2106 every ticket reads as expired, which fails closed.
        let whole = if now >= f64::from(u32::MAX) {
            u32::MAX
        } else {
            now as u32
        };
        let renewable = crate::ccache::renewal_at(
            self.renewable,
            self.renew_until.unwrap_or(0),
            self.expires_at,
            whole,
        )
        .is_ok();
        Ok(renewable && f64::from(self.renew_until.unwrap_or(0)) - now > margin)
    }

    fn __repr__(&self) -> String {
        let renew_until = self
            .renew_until
            .map_or_else(|| "None".to_owned(), |t| t.to_string());
        let renewable = if self.renewable { "True" } else { "False" };
        format!(
            "TicketInfo(principal={:?}, starts_at={}, expires_at={}, renew_until={renew_until}, \
             renewable={renewable})",
            self.principal, self.starts_at, self.expires_at
        )
    }
}

impl From<NativeTicketInfo> for TicketInfo {
    fn from(info: NativeTicketInfo) -> Self {
        TicketInfo {
            principal: info.principal,
            starts_at: info.starts_at,
            expires_at: info.expires_at,
            renew_until: info.renew_until,
            renewable: info.renewable,
            default_principal: ParsedPrincipal(info.default_principal),
        }
    }
}

/// Something other than the user's own cache that `obtain_ticket` found at
/// the cache path and replaced: `kind` says what ("symbolic link", "hard
/// link", "directory", "fifo", "file owned by another user", "file with mode
/// 0644", ...), `owner_uid` who owned that entry, `moved_to` where a planted
/// directory was renamed to (None for anything else, which was replaced).
#[pyclass(frozen, eq, module = "pamkrb._native")]
#[derive(PartialEq, Eq)]
pub struct ReplacedEntry {
    #[pyo3(get)]
    kind: String,
    #[pyo3(get)]
    owner_uid: u32,
    #[pyo3(get)]
    moved_to: Option<String>,
}

#[pymethods]
impl ReplacedEntry {
    fn __repr__(&self) -> String {
        format!(
            "ReplacedEntry(kind={:?}, owner_uid={}, moved_to={})",
            self.kind,
            self.owner_uid,
            self.moved_to
                .as_ref()
                .map_or_else(|| "None".to_owned(), |m| format!("{m:?}"))
        )
    }
}

impl From<Replaced> for ReplacedEntry {
    fn from(replaced: Replaced) -> Self {
        ReplacedEntry {
            kind: replaced.kind,
            owner_uid: replaced.owner_uid,
            // The path was given to us as a str and the new name is ASCII.
            moved_to: replaced
                .moved_to
                .map(|path| path.to_string_lossy().into_owned()),
        }
    }
}

/// What `obtain_ticket` installed (`ticket`), where (`ccache`: the cache
/// path asked for, or the fallback when that could not be written, with
/// `fallback_reason` saying why), and what it replaced there to do so
/// (`replaced`, None when that was the user's own cache or nothing).
#[pyclass(frozen, module = "pamkrb._native")]
pub struct Installation {
    #[pyo3(get)]
    ticket: Py<TicketInfo>,
    #[pyo3(get)]
    ccache: String,
    #[pyo3(get)]
    replaced: Option<Py<ReplacedEntry>>,
    #[pyo3(get)]
    fallback_reason: Option<String>,
    /// When the user's password expires (seconds since the epoch), as the
    /// KDC reported it with a password ticket (an Active Directory KDC
    /// does on every login); None otherwise.
    #[pyo3(get)]
    password_expires_at: Option<u32>,
}

#[pymethods]
impl Installation {
    fn __repr__(&self, py: Python<'_>) -> String {
        let replaced = self
            .replaced
            .as_ref()
            .map_or_else(|| "None".to_owned(), |r| r.get().__repr__());
        let fallback_reason = self
            .fallback_reason
            .as_ref()
            .map_or_else(|| "None".to_owned(), |r| format!("{r:?}"));
        let password_expires_at = self
            .password_expires_at
            .map_or_else(|| "None".to_owned(), |t| t.to_string());
        format!(
            "Installation(ticket={}, ccache={:?}, replaced={replaced}, \
             fallback_reason={fallback_reason}, password_expires_at={password_expires_at})",
            self.ticket.bind(py).get().__repr__(),
            self.ccache,
        )
    }
}

/// One key of a keytab, described: never the key itself.
#[pyclass(frozen, eq, module = "pamkrb._native")]
#[derive(PartialEq, Eq)]
pub struct KeytabEntry {
    /// `a/b@REALM`, as `krb5_unparse_name` writes it.
    #[pyo3(get)]
    principal: String,
    #[pyo3(get)]
    kvno: u32,
    #[pyo3(get)]
    enctype: i32,
    /// libkrb5's name for `enctype`, e.g. "aes256-cts-hmac-sha1-96".
    #[pyo3(get)]
    enctype_name: String,
    /// When the entry was written, seconds since the epoch.
    #[pyo3(get)]
    timestamp: u32,
    /// `principal` parsed, for `is_for`.
    parsed: ParsedPrincipal,
}

#[pymethods]
impl KeytabEntry {
    /// Whether this key is `principal`'s (compared as `TicketInfo.is_for`).
    fn is_for(&self, principal: &str) -> PyResult<bool> {
        let expected = parse_principal(principal)?;
        Ok(self.parsed.0.same_as(&expected))
    }

    fn __repr__(&self) -> String {
        format!(
            "KeytabEntry(principal={:?}, kvno={}, enctype={} ({}), timestamp={})",
            self.principal, self.kvno, self.enctype, self.enctype_name, self.timestamp
        )
    }
}

/// A keytab file as root found it: owner, permission bits, size and entries.
#[pyclass(frozen, module = "pamkrb._native")]
pub struct KeytabInfo {
    #[pyo3(get)]
    owner_uid: u32,
    #[pyo3(get)]
    owner_gid: u32,
    /// Permission bits (`st_mode & 0o7777`).
    #[pyo3(get)]
    mode: u32,
    #[pyo3(get)]
    size: u64,
    /// `tuple[KeytabEntry, ...]`, in file order.
    #[pyo3(get)]
    entries: Py<PyTuple>,
    /// Each entry's principal, parsed, in file order.
    principals: Vec<Principal>,
}

#[pymethods]
impl KeytabInfo {
    /// Whether the keytab holds at least one key of `principal` (compared
    /// as `TicketInfo.is_for`): the test `obtain_ticket` applies before it
    /// asks the KDC.
    fn has_key_for(&self, principal: &str) -> PyResult<bool> {
        let expected = parse_principal(principal)?;
        Ok(self.principals.iter().any(|p| p.same_as(&expected)))
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "KeytabInfo(owner_uid={}, owner_gid={}, mode={:#o}, size={}, entries={})",
            self.owner_uid,
            self.owner_gid,
            self.mode,
            self.size,
            self.entries.bind(py).len()
        )
    }
}

/// Reads and describes the keytab at `path` the way the hub reads it (the
/// same walk: no symlink in any component, a single regular file, at most
/// 1 MiB, no lock). Raises KeytabError. Key bytes stay in Rust and are wiped.
#[pyfunction]
fn inspect_keytab(py: Python<'_>, path: &str) -> PyResult<KeytabInfo> {
    let described = py
        .detach(|| {
            keytab::read(Path::new(path)).map(|file| {
                let entries: Vec<KeytabEntry> = file
                    .keytab
                    .entries
                    .iter()
                    .map(|entry| KeytabEntry {
                        principal: entry.principal.to_string_lossy(),
                        kvno: entry.kvno,
                        enctype: entry.enctype,
                        enctype_name: crate::kinit::enctype_name(entry.enctype),
                        timestamp: entry.timestamp,
                        parsed: ParsedPrincipal(entry.principal.clone()),
                    })
                    .collect();
                (
                    file.owner_uid,
                    file.owner_gid,
                    file.mode,
                    file.size,
                    entries,
                )
            })
        })
        .map_err(NativeError::from)?;
    let (owner_uid, owner_gid, mode, size, entries) = described;
    let principals = entries.iter().map(|entry| entry.parsed.0.clone()).collect();
    let entries = entries
        .into_iter()
        .map(|entry| Py::new(py, entry))
        .collect::<PyResult<Vec<_>>>()?;
    Ok(KeytabInfo {
        owner_uid,
        owner_gid,
        mode,
        size,
        entries: PyTuple::new(py, entries)?.unbind(),
        principals,
    })
}

/// Authenticates `username` with `password` against PAM `service` and, if
/// `check_account`, runs the account stack, in one transaction. A second
/// hidden prompt is answered with `otp`. The password and OTP bytearrays are
/// zeroed before this returns. Returns the user name PAM holds in PAM_USER
/// afterwards (a module may map names), or `username` when that is unset or
/// not UTF-8. Raises AuthenticationDenied or PAMSystemError.
#[pyfunction]
#[pyo3(signature = (service, username, password, *, otp=None, remote_host=None, check_account=true))]
fn pam_authenticate(
    py: Python<'_>,
    service: &str,
    username: &str,
    password: &Bound<'_, PyByteArray>,
    otp: Option<&Bound<'_, PyByteArray>>,
    remote_host: Option<&str>,
    check_account: bool,
) -> PyResult<String> {
    let password = take_secret(password);
    let otp = otp.map(take_secret);
    template::check_username(username).map_err(NativeError::from)?;
    let name = py
        .detach(|| {
            pam::authenticate(pam::LoginAttempt {
                service,
                username,
                password,
                otp,
                remote_host,
                check_account,
            })
        })
        .map_err(NativeError::from)?;
    Ok(name)
}

/// Copies a secret out of a bytearray and zeroes the bytearray.
fn take_secret(buffer: &Bound<'_, PyByteArray>) -> SecretBytes {
    // SAFETY: we hold the GIL and no other Rust reference into the
    // bytearray exists; the copy and the wipe happen before the GIL is
    // released, so Python code cannot resize it in between.
    unsafe {
        let buf = buffer.as_bytes_mut();
        let secret = SecretBytes::new(buf.to_vec());
        crate::secret::wipe(buf);
        secret
    }
}

/// Gets a ticket for `principal` from `keytab` (in-process, libkrb5) and
/// atomically installs it at `ccache`, owned by uid/gid (default: the
/// calling user) with mode 0600, replacing whatever else is there. Blocks on
/// the KDC with the GIL released. `deadline` is an absolute
/// `time.monotonic()` value after which nothing is installed (KerberosError).
/// When `ccache` cannot be written (another user's FUSE mount there, ...)
/// and `fallback` is given, the same ticket goes to `fallback`, in a private
/// directory of the owner's made if missing; `Installation.ccache` says which.
#[pyfunction]
#[pyo3(signature = (principal, keytab, ccache, *, uid=None, gid=None, lifetime=None, renew_lifetime=None, deadline=None, fallback=None))]
#[allow(clippy::too_many_arguments)] // mirrors the keyword-only Python signature
fn obtain_ticket(
    py: Python<'_>,
    principal: &str,
    keytab: &str,
    ccache: &str,
    uid: Option<u32>,
    gid: Option<u32>,
    lifetime: Option<u32>,
    renew_lifetime: Option<u32>,
    deadline: Option<f64>,
    fallback: Option<&str>,
) -> PyResult<Installation> {
    let request = TicketRequest {
        principal,
        lifetime,
        renew_lifetime,
        enterprise: false,
    };
    let source = Source::Keytab(Path::new(keytab));
    install(
        py,
        Target {
            ccache,
            uid,
            gid,
            deadline,
            fallback,
        },
        |to| ticket::obtain(&request, source, to),
    )
}

/// Gets a ticket for `principal` with `password` (in-process, libkrb5, no
/// prompter) and installs it at `ccache` exactly as `obtain_ticket` does.
/// The password bytearray is copied into a buffer that is wiped on drop and
/// zeroed before anything else happens, on every path. Raises
/// KerberosPasswordRejected when the KDC does not accept the password,
/// KerberosError for anything else (an empty password, a NUL byte or more
/// than 8 KiB without asking the KDC, code None); PasswordExpired for an
/// expired or must-change password, AccountRevoked for a locked, disabled
/// or expired account. `fallback` as for `obtain_ticket`. `enterprise`:
/// send `principal` as an enterprise name (a UPN). `armor_keytab`: wrap the
/// request in FAST armor from that keytab's machine key (read as keytabs
/// are; the request fails if the KDC does not do FAST). Canonicalization is
/// always requested: the installed cache holds the KDC's name for the
/// client, which `Installation.ticket.principal` reports.
#[pyfunction]
#[pyo3(signature = (principal, password, ccache, *, uid=None, gid=None, lifetime=None, renew_lifetime=None, deadline=None, fallback=None, enterprise=false, armor_keytab=None))]
#[allow(clippy::too_many_arguments)] // mirrors the keyword-only Python signature
fn obtain_ticket_with_password(
    py: Python<'_>,
    principal: &str,
    password: &Bound<'_, PyByteArray>,
    ccache: &str,
    uid: Option<u32>,
    gid: Option<u32>,
    lifetime: Option<u32>,
    renew_lifetime: Option<u32>,
    deadline: Option<f64>,
    fallback: Option<&str>,
    enterprise: bool,
    armor_keytab: Option<&str>,
) -> PyResult<Installation> {
    let password = take_secret(password);
    let request = TicketRequest {
        principal,
        lifetime,
        renew_lifetime,
        enterprise,
    };
    let armor = armor_keytab.filter(|path| !path.is_empty()).map(Path::new);
    install(
        py,
        Target {
            ccache,
            uid,
            gid,
            deadline,
            fallback,
        },
        |to| ticket::obtain(&request, Source::Password(&password, armor), to),
    )
}

/// `name` parsed as libkrb5 parses it (the default realm fills in a
/// missing one); KerberosError when it is not a principal name.
fn parse_principal(name: &str) -> PyResult<Principal> {
    Ok(crate::kinit::parse_principal(name)
        .map_err(|e| NativeError::Ticket(TicketError::Kerberos(e)))?)
}

/// Where a pyfunction installs a cache, as Python gave it (`deadline` is a
/// `time.monotonic()` value).
struct Target<'a> {
    ccache: &'a str,
    uid: Option<u32>,
    gid: Option<u32>,
    deadline: Option<f64>,
    fallback: Option<&'a str>,
}

/// The one path of every pyfunction that installs a cache: check the owner
/// and the deadline, run `work` towards that destination with the GIL
/// released, and convert what it installed (or its error).
fn install<F>(py: Python<'_>, target: Target<'_>, work: F) -> PyResult<Installation>
where
    F: for<'d> FnOnce(&Destination<'d>) -> Result<ticket::Installation, TicketError> + Send,
{
    let destination = Destination {
        cache: Path::new(target.ccache),
        fallback: target.fallback.map(Path::new),
        owner: owner(target.uid, target.gid)?,
        deadline: target.deadline.map(monotonic_deadline).transpose()?,
    };
    let installed = py
        .detach(|| work(&destination))
        .map_err(NativeError::from)?;
    installation(py, installed)
}

fn owner(uid: Option<u32>, gid: Option<u32>) -> PyResult<Option<Owner>> {
    match (uid, gid) {
        (Some(uid), Some(gid)) => Ok(Some(Owner { uid, gid })),
        (None, None) => Ok(None),
        _ => Err(pyo3::exceptions::PyValueError::new_err(
            "uid and gid must be given together",
        )),
    }
}

fn monotonic_deadline(seconds: f64) -> PyResult<Deadline> {
    Deadline::from_monotonic_secs(seconds).ok_or_else(|| {
        pyo3::exceptions::PyValueError::new_err(
            "deadline must be a finite, non-negative time.monotonic() value",
        )
    })
}

fn installation(py: Python<'_>, installed: ticket::Installation) -> PyResult<Installation> {
    Ok(Installation {
        ticket: Py::new(py, TicketInfo::from(installed.ticket))?,
        // The path was given to us as a str.
        ccache: installed.cache.to_string_lossy().into_owned(),
        replaced: installed
            .replaced
            .map(|r| Py::new(py, ReplacedEntry::from(r)))
            .transpose()?,
        fallback_reason: installed.fallback_reason,
        password_expires_at: installed.password_expires_at,
    })
}

/// Renews the ticket-granting ticket in `ccache` with a TGS request (as
/// `kinit -R`; no keytab) and atomically replaces the cache with the
/// renewed one, owned by uid/gid (default: the calling user), mode 0600.
/// The cache must be that owner's own (as for `inspect_ticket`) and hold a
/// TGT of `principal`. Raises TicketNotRenewable when the ticket is not
/// renewable, has expired or its renewal window is over (a new initial
/// ticket is needed), KerberosError when the KDC refuses. Blocks on the
/// KDC with the GIL released; `deadline` as for `obtain_ticket`. The cache
/// is read from `ccache` (the path in use) and the renewed one written there,
/// or at `fallback` as for `obtain_ticket`.
#[pyfunction]
#[pyo3(signature = (principal, ccache, *, uid=None, gid=None, deadline=None, fallback=None))]
fn renew_ticket(
    py: Python<'_>,
    principal: &str,
    ccache: &str,
    uid: Option<u32>,
    gid: Option<u32>,
    deadline: Option<f64>,
    fallback: Option<&str>,
) -> PyResult<Installation> {
    install(
        py,
        Target {
            ccache,
            uid,
            gid,
            deadline,
            fallback,
        },
        |to| ticket::renew(principal, to),
    )
}

/// The bytes of the FILE credential cache at `ccache`, read with the checks
/// of `inspect_ticket` (owned by `uid`, default the euid; no group or other
/// bits; at most 1 MiB) and verified to be a cache holding a TGT. The GIL
/// is released while the file is read.
#[pyfunction]
#[pyo3(signature = (ccache, *, uid=None))]
fn read_cache<'py>(
    py: Python<'py>,
    ccache: &str,
    uid: Option<u32>,
) -> PyResult<Bound<'py, PyBytes>> {
    let uid = uid.unwrap_or_else(|| nix::unistd::geteuid().as_raw());
    let mut bytes = py
        .detach(|| ticket::read_raw(Path::new(ccache), uid))
        .map_err(NativeError::from)?;
    let out = PyBytes::new(py, &bytes);
    crate::secret::wipe(&mut bytes);
    Ok(out)
}

/// Installs the credential cache `data` (as `read_cache` returned it) at
/// `ccache`, atomically, owned by uid/gid (default: the calling user), mode
/// 0600. `data` must parse as a FILE cache whose every entry belongs to
/// `principal` and whose TGT has not expired (TicketFormatError otherwise);
/// what is written is pamkrb's own serialization of it. `fallback` as for
/// `obtain_ticket`.
#[pyfunction]
#[pyo3(signature = (ccache, data, *, principal, uid=None, gid=None, deadline=None, fallback=None))]
#[allow(clippy::too_many_arguments)] // mirrors the keyword-only Python signature
fn install_cache(
    py: Python<'_>,
    ccache: &str,
    data: &[u8],
    principal: &str,
    uid: Option<u32>,
    gid: Option<u32>,
    deadline: Option<f64>,
    fallback: Option<&str>,
) -> PyResult<Installation> {
    install(
        py,
        Target {
            ccache,
            uid,
            gid,
            deadline,
            fallback,
        },
        |to| ticket::install_raw(data, principal, to),
    )
}

/// Reads the FILE credential cache at `ccache` and describes its
/// ticket-granting ticket, without a KDC or a krb5 context. The file must
/// be a regular file owned by `uid` (default: the calling process's euid)
/// and not accessible to group or others, or CredentialCacheError is raised;
/// other hard links to it are accepted, as they share that owner and mode.
/// The GIL is released while the path is walked and read: a hung network
/// mount must not freeze the hub.
#[pyfunction]
#[pyo3(signature = (ccache, *, uid=None))]
fn inspect_ticket(py: Python<'_>, ccache: &str, uid: Option<u32>) -> PyResult<TicketInfo> {
    let uid = uid.unwrap_or_else(|| nix::unistd::geteuid().as_raw());
    let info = py
        .detach(|| ticket::inspect(Path::new(ccache), uid))
        .map_err(NativeError::from)?;
    Ok(info.into())
}

/// Removes the credential cache at `ccache` if it is `uid`'s: a regular file
/// owned by `uid` (any mode, any number of links), reached without a symlink
/// on the way and unlinked by name without following one. True when it was
/// removed; False when anything else is there (nothing, a symlink, a
/// directory, another user's file, an entry root cannot look at), which is
/// left alone. CredentialCacheError when the way there is unsafe (a symlink,
/// a directory others can write). The GIL is released meanwhile.
#[pyfunction]
#[pyo3(signature = (ccache, *, uid))]
fn destroy_cache(py: Python<'_>, ccache: &str, uid: u32) -> PyResult<bool> {
    let removed = py
        .detach(|| crate::cache_file::destroy(Path::new(ccache), uid))
        .map_err(|err| NativeError::Ticket(TicketError::CacheFile(err)))?;
    Ok(removed)
}

/// `default_realm` from the krb5.conf libkrb5 reads (honours KRB5_CONFIG).
#[pyfunction]
fn default_realm() -> PyResult<String> {
    let realm =
        crate::kinit::default_realm().map_err(|e| NativeError::Ticket(TicketError::Kerberos(e)))?;
    Ok(realm)
}

/// The enctype numbers libkrb5 permits on this host (`permitted_enctypes`
/// of the krb5.conf KRB5_CONFIG names, or libkrb5's default), in order.
#[pyfunction]
fn permitted_enctypes() -> PyResult<Vec<i32>> {
    let list = crate::kinit::permitted_enctypes()
        .map_err(|e| NativeError::Ticket(TicketError::Kerberos(e)))?;
    Ok(list)
}

/// libkrb5's name for an enctype number, e.g. "aes256-cts-hmac-sha1-96".
#[pyfunction]
fn enctype_name(enctype: i32) -> String {
    crate::kinit::enctype_name(enctype)
}

/// Raises TemplateError if `template` has a syntax error or unknown placeholder.
#[pyfunction]
fn validate_template(template: &str) -> PyResult<()> {
    template::validate(template).map_err(NativeError::from)?;
    Ok(())
}

/// Fills in `template`; with `path=True` the result must be an absolute path
/// without `..` components. `user` and `domain` default to the parts of
/// `username` as given (pamkrb.usernames passes them lower-cased).
#[pyfunction]
#[pyo3(signature = (template, *, username, uid, gid, home, realm, user=None, domain=None, path=false))]
#[allow(clippy::too_many_arguments)]
fn expand_template(
    template: &str,
    username: &str,
    uid: u32,
    gid: u32,
    home: &str,
    realm: &str,
    user: Option<&str>,
    domain: Option<&str>,
    path: bool,
) -> PyResult<String> {
    let parts = template::split_username(username).map_err(NativeError::from)?;
    let identity = Identity {
        username,
        user: user.unwrap_or(parts.user),
        domain: domain.unwrap_or(parts.domain.unwrap_or("")),
        uid,
        gid,
        home,
        realm,
    };
    let expanded = if path {
        template::expand_path(template, &identity)
    } else {
        template::expand(template, &identity)
    };
    Ok(expanded.map_err(NativeError::from)?)
}

/// Raises InvalidUsername unless `username` is safe to use in PAM and paths.
#[pyfunction]
fn check_username(username: &str) -> PyResult<()> {
    template::check_username(username).map_err(NativeError::from)?;
    Ok(())
}

// -- single sign-on (gssapi.rs) ------------------------------------------------

/// `GssError` in the exceptions every caller already handles: a refused
/// token is the client's failure (AuthenticationDenied), everything else
/// the system's (KeytabError, KerberosError).
fn gss_error(err: GssError) -> PyErr {
    let message = err.to_string();
    match err {
        GssError::Refused(_) => exceptions::AuthenticationDenied::new_err(message),
        GssError::Keytab(e) => NativeError::from(e).into(),
        GssError::Kerberos(e) => NativeError::from(TicketError::Kerberos(e)).into(),
        GssError::System(_) | GssError::DeadlinePassed => {
            exceptions::KerberosError::new_err((message, None::<i32>))
        }
    }
}

/// Accepts one `Authorization: Negotiate` token with the keys of the service
/// `keytab` (root's alone, read through the safe walk), refusing replays
/// through the MIT replay cache `replay_cache` (None: MIT's default). Returns
/// `(principal, realm, components, output_token, delegated)`: the client as
/// `name@REALM`, its realm and name components, the token for
/// `WWW-Authenticate: Negotiate`, and the delegated TGT as FILE-cache bytes
/// for `install_cache` (None when the client delegated nothing). Raises
/// AuthenticationDenied for a bad, replayed or foreign token, KeytabError or
/// KerberosError for a fault of ours. The GIL is released throughout.
#[pyfunction]
#[pyo3(signature = (token, keytab, *, replay_cache=None, deadline=None))]
fn accept_negotiate<'py>(
    py: Python<'py>,
    token: &[u8],
    keytab: &str,
    replay_cache: Option<&str>,
    deadline: Option<f64>,
) -> PyResult<Bound<'py, PyTuple>> {
    let deadline = deadline.map(monotonic_deadline).transpose()?;
    let acceptor = gssapi::Acceptor {
        keytab: Path::new(keytab),
        replay_cache,
    };
    let accepted = py
        .detach(|| gssapi::accept(&acceptor, token, deadline))
        .map_err(gss_error)?;
    let principal = &accepted.principal;
    let components: Vec<String> = principal
        .components
        .iter()
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    let delegated = accepted.delegated.as_ref().map(|cache| {
        let mut bytes = crate::ccache::serialize(cache);
        let out = PyBytes::new(py, &bytes);
        crate::secret::wipe(&mut bytes);
        out
    });
    (
        principal.to_string_lossy(),
        String::from_utf8_lossy(&principal.realm).into_owned(),
        components,
        PyBytes::new(py, &accepted.output_token),
        delegated,
    )
        .into_pyobject(py)
}

/// Runs only PAM's account stack (`pam_acct_mgmt`, no password) for
/// `username` on `service`: for a user authenticated by single sign-on.
/// Returns PAM_USER; raises AuthenticationDenied or PAMSystemError.
#[pyfunction]
#[pyo3(signature = (service, username, *, remote_host=None))]
fn pam_check_account(
    py: Python<'_>,
    service: &str,
    username: &str,
    remote_host: Option<&str>,
) -> PyResult<String> {
    template::check_username(username).map_err(NativeError::from)?;
    let name = py
        .detach(|| pam::check_account(service, username, remote_host))
        .map_err(NativeError::from)?;
    Ok(name)
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // Rust `log` records go to the Python logger named after the module
    // path ("pamkrb._native..."), which the hub's logging configuration
    // handles like any other.
    let _ = pyo3_log::try_init();
    m.add_class::<TicketInfo>()?;
    m.add_class::<ReplacedEntry>()?;
    m.add_class::<Installation>()?;
    m.add_class::<KeytabInfo>()?;
    m.add_class::<KeytabEntry>()?;
    m.add_function(wrap_pyfunction!(pam_authenticate, m)?)?;
    m.add_function(wrap_pyfunction!(obtain_ticket, m)?)?;
    m.add_function(wrap_pyfunction!(obtain_ticket_with_password, m)?)?;
    m.add_function(wrap_pyfunction!(renew_ticket, m)?)?;
    m.add_function(wrap_pyfunction!(read_cache, m)?)?;
    m.add_function(wrap_pyfunction!(install_cache, m)?)?;
    m.add_function(wrap_pyfunction!(inspect_ticket, m)?)?;
    m.add_function(wrap_pyfunction!(destroy_cache, m)?)?;
    m.add_function(wrap_pyfunction!(inspect_keytab, m)?)?;
    m.add_function(wrap_pyfunction!(default_realm, m)?)?;
    m.add_function(wrap_pyfunction!(permitted_enctypes, m)?)?;
    m.add_function(wrap_pyfunction!(enctype_name, m)?)?;
    m.add_function(wrap_pyfunction!(validate_template, m)?)?;
    m.add_function(wrap_pyfunction!(expand_template, m)?)?;
    m.add_function(wrap_pyfunction!(check_username, m)?)?;
    m.add_function(wrap_pyfunction!(accept_negotiate, m)?)?;
    m.add_function(wrap_pyfunction!(pam_check_account, m)?)?;
    // Limits both the native and the Python side enforce, defined once here.
    m.add("MAX_USERNAME_LEN", template::MAX_USERNAME_LEN)?;
    m.add("MAX_PASSWORD_BYTES", crate::kinit::MAX_PASSWORD_BYTES)?;
    m.add("MAX_SIGN_IN_BYTES", crate::kinit::MAX_SIGN_IN_BYTES)?;
    m.add("MAX_CACHE_BYTES", ticket::MAX_CACHE_BYTES)?;
    Ok(())
}
