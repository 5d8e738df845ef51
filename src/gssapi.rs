//! SPNEGO single sign-on, the acceptor side: a browser's
//! `Authorization: Negotiate` token → the client principal, the token to
//! send back (mutual authentication), and the TGT the browser delegated, if
//! it did, as a credential cache ready for `ticket::install_raw`.
//!
//! Through MIT `libgssapi_krb5.so.2`. The service keytab is read like every
//! other keytab pamkrb reads (the safe walk, no lock, parsed in Rust) and
//! must be root's alone; libgssapi only ever sees its keys in a MEMORY
//! keytab named in the credential store of `gss_acquire_cred_from`, so no
//! process-wide `KRB5_KTNAME` is set or read. Replays are refused by MIT's
//! replay cache: the acceptor's `krb5_rd_req` stores every authenticator in
//! `rcache` (default `dfl:`, the file2 cache `$KRB5RCACHEDIR` or
//! `/var/tmp/krb5_<euid>.rcache2`, `src/lib/krb5/rcache/rc_dfl.c`) and
//! fails a second use with KRB5KRB_AP_ERR_REPEAT.
//!
//! The delegated credential is copied out of libgssapi into a MEMORY cache
//! (`gss_krb5_copy_ccache`, which stores into an initialised cache) and read
//! back as plain Rust data; it never touches a file here.

#![allow(non_camel_case_types)]

use std::ffi::CString;
use std::path::Path;
use std::ptr;

use libc::{c_char, c_int, c_void, size_t};

use crate::ccache::{CredentialCache, Principal};
use crate::deadline::Deadline;
use crate::keytab::{self, KeytabError};
use crate::kinit::{self, Context, KerberosError, LentPrincipal, MemoryCache, MemoryKeytab};
use crate::krb5_ffi as k5;

/// Browsers send a few kilobytes (a Windows PAC can make it 10–20 KiB); a
/// token larger than this is refused before libgssapi parses it.
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;

type OM_uint32 = u32;

#[repr(C)]
struct gss_buffer_desc {
    length: size_t,
    value: *mut c_void,
}

#[repr(C)]
struct gss_OID_desc {
    length: OM_uint32,
    elements: *mut c_void,
}
type gss_OID = *mut gss_OID_desc;

#[repr(C)]
struct gss_key_value_element_desc {
    key: *const c_char,
    value: *const c_char,
}

#[repr(C)]
struct gss_key_value_set_desc {
    count: OM_uint32,
    elements: *mut gss_key_value_element_desc,
}

#[repr(C)]
struct gss_name_struct {
    _private: [u8; 0],
}
type gss_name_t = *mut gss_name_struct;
#[repr(C)]
struct gss_cred_id_struct {
    _private: [u8; 0],
}
type gss_cred_id_t = *mut gss_cred_id_struct;
#[repr(C)]
struct gss_ctx_id_struct {
    _private: [u8; 0],
}
type gss_ctx_id_t = *mut gss_ctx_id_struct;

const GSS_C_ACCEPT: c_int = 2;
const GSS_C_INDEFINITE: OM_uint32 = 0xffff_ffff;
const GSS_C_GSS_CODE: c_int = 1;
const GSS_C_MECH_CODE: c_int = 2;
const GSS_C_DELEG_FLAG: OM_uint32 = 1;
const GSS_S_COMPLETE: OM_uint32 = 0;
const GSS_S_CONTINUE_NEEDED: OM_uint32 = 1;
/// The calling and routine error fields; the low bits are informational.
const GSS_ERROR_MASK: OM_uint32 = 0xffff_0000;
/// 1.2.840.113554.1.2.2, the Kerberos 5 mechanism (RFC 1964), and
/// 1.2.840.48018.1.2.2, the same mechanism under the OID Windows clients
/// offer first (MIT's SPNEGO accepts both as Kerberos).
const KRB5_MECH_OIDS: [&[u8]; 2] = [
    b"\x2a\x86\x48\x86\xf7\x12\x01\x02\x02",
    b"\x2a\x86\x48\x82\xf7\x12\x01\x02\x02",
];

// Every function here is exported by MIT krb5 1.17's libgssapi_krb5.so.2
// (`src/lib/gssapi/libgssapi_krb5.exports`), checked by tools/check_wheel.py.
#[link(name = "gssapi_krb5")]
extern "C" {
    fn gss_acquire_cred_from(
        minor: *mut OM_uint32,
        desired_name: gss_name_t,
        time_req: OM_uint32,
        desired_mechs: *mut c_void,
        cred_usage: c_int,
        cred_store: *const gss_key_value_set_desc,
        output_cred: *mut gss_cred_id_t,
        actual_mechs: *mut c_void,
        time_rec: *mut OM_uint32,
    ) -> OM_uint32;
    fn gss_accept_sec_context(
        minor: *mut OM_uint32,
        context: *mut gss_ctx_id_t,
        acceptor_cred: gss_cred_id_t,
        input_token: *mut gss_buffer_desc,
        channel_bindings: *mut c_void,
        src_name: *mut gss_name_t,
        mech_type: *mut gss_OID,
        output_token: *mut gss_buffer_desc,
        ret_flags: *mut OM_uint32,
        time_rec: *mut OM_uint32,
        delegated_cred: *mut gss_cred_id_t,
    ) -> OM_uint32;
    fn gss_display_name(
        minor: *mut OM_uint32,
        name: gss_name_t,
        output: *mut gss_buffer_desc,
        name_type: *mut gss_OID,
    ) -> OM_uint32;
    fn gss_display_status(
        minor: *mut OM_uint32,
        status: OM_uint32,
        status_type: c_int,
        mech: gss_OID,
        message_context: *mut OM_uint32,
        output: *mut gss_buffer_desc,
    ) -> OM_uint32;
    fn gss_krb5_copy_ccache(
        minor: *mut OM_uint32,
        cred: gss_cred_id_t,
        out_ccache: k5::krb5_ccache,
    ) -> OM_uint32;
    fn gss_release_buffer(minor: *mut OM_uint32, buffer: *mut gss_buffer_desc) -> OM_uint32;
    fn gss_release_name(minor: *mut OM_uint32, name: *mut gss_name_t) -> OM_uint32;
    fn gss_release_cred(minor: *mut OM_uint32, cred: *mut gss_cred_id_t) -> OM_uint32;
    fn gss_delete_sec_context(
        minor: *mut OM_uint32,
        context: *mut gss_ctx_id_t,
        output_token: *mut gss_buffer_desc,
    ) -> OM_uint32;
}

#[link(name = "krb5")]
extern "C" {
    fn krb5_kt_add_entry(
        context: k5::krb5_context,
        id: k5::krb5_keytab,
        entry: *mut k5::krb5_keytab_entry,
    ) -> k5::krb5_error_code;
    fn krb5_cc_start_seq_get(
        context: k5::krb5_context,
        cache: k5::krb5_ccache,
        cursor: *mut *mut c_void,
    ) -> k5::krb5_error_code;
    fn krb5_cc_next_cred(
        context: k5::krb5_context,
        cache: k5::krb5_ccache,
        cursor: *mut *mut c_void,
        creds: *mut k5::krb5_creds,
    ) -> k5::krb5_error_code;
    fn krb5_cc_end_seq_get(
        context: k5::krb5_context,
        cache: k5::krb5_ccache,
        cursor: *mut *mut c_void,
    ) -> k5::krb5_error_code;
}

#[derive(Debug, thiserror::Error)]
pub enum GssError {
    /// The token was refused: malformed, for another service, replayed,
    /// expired, not Kerberos, or a multi-round negotiation we do not do.
    /// The client's failure (or the browser's), never the system's.
    #[error("Negotiate token refused: {0}")]
    Refused(String),
    /// The service keytab is missing, unreadable, loose or empty, or
    /// libgssapi failed for a reason of ours: the admin must fix it.
    #[error("SPNEGO acceptor: {0}")]
    System(String),
    #[error(transparent)]
    Keytab(#[from] KeytabError),
    #[error(transparent)]
    Kerberos(#[from] KerberosError),
    /// The caller stopped waiting: nothing is returned.
    #[error("gave up on the Negotiate token after the deadline (kdc_timeout)")]
    DeadlinePassed,
}

/// What an accepted token says.
#[derive(Debug)]
pub struct Accepted {
    /// The client, as the ticket names it (`alice@EXAMPLE.ORG`).
    pub principal: Principal,
    /// The token for `WWW-Authenticate: Negotiate <token>` (the AP-REP that
    /// lets the browser check the server), possibly empty.
    pub output_token: Vec<u8>,
    /// The TGT the browser delegated, with its session key, when it did.
    pub delegated: Option<CredentialCache>,
}

/// Where the acceptor's keys and replay cache are.
pub struct Acceptor<'a> {
    /// The service keytab (`HTTP/<host>@REALM`): a regular file owned by
    /// root (or the caller), no group or other bits.
    pub keytab: &'a Path,
    /// An MIT replay cache name (`dfl:`, `file2:/path`); `None`: MIT's
    /// default (`KRB5RCACHENAME`, else `dfl:`).
    pub replay_cache: Option<&'a str>,
}

/// Accepts one SPNEGO (or raw Kerberos) token. Single round only: a token
/// that needs another round (`GSS_S_CONTINUE_NEEDED`) is refused, as
/// browsers complete Kerberos in one. Only the Kerberos mechanism is
/// accepted, whatever other mechanisms libgssapi has loaded (NTLM).
pub fn accept(
    acceptor: &Acceptor<'_>,
    token: &[u8],
    deadline: Option<Deadline>,
) -> Result<Accepted, GssError> {
    if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
        return Err(GssError::Refused(format!(
            "a token of {} bytes (1 to {MAX_TOKEN_BYTES} expected)",
            token.len()
        )));
    }
    check_deadline(deadline)?;
    let ctx = Context::new()?;
    let keys = service_keys(&ctx, acceptor.keytab)?;
    let cred = AcceptorCred::acquire(&keys, acceptor)?;
    let mut context = SecurityContext(ptr::null_mut());
    let mut input = gss_buffer_desc {
        length: token.len(),
        // libgssapi only reads the input token.
        value: token.as_ptr().cast_mut().cast(),
    };
    let mut src_name = Name(ptr::null_mut());
    let mut mech: gss_OID = ptr::null_mut();
    let mut output = Buffer::empty();
    let mut flags: OM_uint32 = 0;
    let mut delegated = Cred(ptr::null_mut());
    let mut minor: OM_uint32 = 0;
    // SAFETY: every out-pointer is valid and owned by a wrapper that
    // releases what libgssapi stores in it; `input` borrows `token`, alive
    // for the call; null channel bindings and time_rec are allowed.
    let major = unsafe {
        gss_accept_sec_context(
            &mut minor,
            &mut context.0,
            cred.0,
            &mut input,
            ptr::null_mut(),
            &mut src_name.0,
            &mut mech,
            &mut output.0,
            &mut flags,
            ptr::null_mut(),
            &mut delegated.0,
        )
    };
    if major & GSS_ERROR_MASK != 0 {
        return Err(GssError::Refused(status_message(major, minor, mech)));
    }
    if major & GSS_S_CONTINUE_NEEDED != 0 {
        return Err(GssError::Refused(
            "the negotiation needs another round (not Kerberos in one token)".into(),
        ));
    }
    if major != GSS_S_COMPLETE {
        // A supplementary bit (a duplicate or old token): never a login.
        return Err(GssError::Refused(status_message(major, minor, mech)));
    }
    if !is_krb5(mech) {
        return Err(GssError::Refused(
            "the negotiated mechanism is not Kerberos".into(),
        ));
    }
    let principal = src_name.principal()?;
    let delegated = if flags & GSS_C_DELEG_FLAG != 0 && !delegated.0.is_null() {
        Some(delegated.copy_out(&ctx, &principal)?)
    } else {
        None
    };
    // Past the deadline the caller has already refused the login: what was
    // accepted (and a delegated TGT) must not outlive that answer.
    check_deadline(deadline)?;
    Ok(Accepted {
        principal,
        output_token: output.bytes(),
        delegated,
    })
}

fn check_deadline(deadline: Option<Deadline>) -> Result<(), GssError> {
    match deadline {
        Some(d) if d.has_passed() => Err(GssError::DeadlinePassed),
        _ => Ok(()),
    }
}

/// The service keytab's keys in a MEMORY keytab, after the file passed the
/// checks a root-only secret must pass.
fn service_keys<'c>(ctx: &'c Context, path: &Path) -> Result<MemoryKeytab<'c>, GssError> {
    let file = keytab::read(path)?;
    let euid = nix::unistd::geteuid().as_raw();
    if (file.owner_uid != 0 && file.owner_uid != euid) || file.mode & 0o077 != 0 {
        return Err(GssError::System(format!(
            "service keytab {} must be owned by root and readable by it alone \
             (found uid {}, mode {:04o}): whoever can read it can impersonate every user",
            path.display(),
            file.owner_uid,
            file.mode
        )));
    }
    if file.keytab.entries.is_empty() {
        return Err(GssError::System(format!(
            "service keytab {} holds no keys",
            path.display()
        )));
    }
    let memory = MemoryKeytab::new(ctx)?;
    for entry in &file.keytab.entries {
        let key = entry.key.as_bytes();
        let mut principal = LentPrincipal::new(&entry.principal)?;
        let mut raw = k5::krb5_keytab_entry {
            magic: 0,
            principal: principal.as_ptr(),
            timestamp: entry.timestamp as i32,
            vno: entry.kvno,
            key: k5::krb5_keyblock {
                magic: 0,
                enctype: entry.enctype,
                length: libc::c_uint::try_from(key.len())
                    .map_err(|_| GssError::System("a key is too long".into()))?,
                contents: key.as_ptr().cast_mut(),
            },
        };
        // SAFETY: the keytab and context are live; `raw` points to a lent
        // principal and the key bytes, both alive for the call, and
        // krb5_mkt_add copies them (krb5_copy_principal, krb5_copy_keyblock
        // contents), writing through neither.
        let code = unsafe { krb5_kt_add_entry(ctx.0, memory.raw, &mut raw) };
        ctx.check(code, "adding a service key to the memory keytab")?;
    }
    Ok(memory)
}

/// An acceptor credential; released on drop.
struct AcceptorCred(gss_cred_id_t);

impl AcceptorCred {
    fn acquire(keys: &MemoryKeytab<'_>, acceptor: &Acceptor<'_>) -> Result<Self, GssError> {
        let keytab = c_string(&keys.name)?;
        let rcache = acceptor.replay_cache.map(c_string).transpose()?;
        let mut elements = vec![gss_key_value_element_desc {
            key: c"keytab".as_ptr(),
            value: keytab.as_ptr(),
        }];
        if let Some(rcache) = &rcache {
            elements.push(gss_key_value_element_desc {
                key: c"rcache".as_ptr(),
                value: rcache.as_ptr(),
            });
        }
        let store = gss_key_value_set_desc {
            count: elements.len() as OM_uint32,
            elements: elements.as_mut_ptr(),
        };
        let mut cred = AcceptorCred(ptr::null_mut());
        let mut minor = 0;
        // SAFETY: `store` and the strings it points to live until the end of
        // this function and libgssapi copies what it keeps (it resolves the
        // keytab name to its own handle); a null desired name accepts for any
        // principal in the keytab; null mechs and outputs are allowed.
        let major = unsafe {
            gss_acquire_cred_from(
                &mut minor,
                ptr::null_mut(),
                GSS_C_INDEFINITE,
                ptr::null_mut(),
                GSS_C_ACCEPT,
                &store,
                &mut cred.0,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        if major & GSS_ERROR_MASK != 0 {
            return Err(GssError::System(format!(
                "acquiring the acceptor credential from the service keytab: {}",
                status_message(major, minor, ptr::null_mut())
            )));
        }
        Ok(cred)
    }
}

impl Drop for AcceptorCred {
    fn drop(&mut self) {
        release_cred(&mut self.0);
    }
}

/// A credential libgssapi returned (the delegated one); released on drop.
struct Cred(gss_cred_id_t);

impl Cred {
    /// The delegated TGT as a credential cache of `client`.
    fn copy_out(&self, ctx: &Context, client: &Principal) -> Result<CredentialCache, GssError> {
        let cache = MemoryCache::new(ctx)?;
        let mut lent = LentPrincipal::new(client)?;
        // SAFETY: live context and cache; krb5_mcc_initialize copies the
        // principal, which is alive for the call.
        let code = unsafe { k5::krb5_cc_initialize(ctx.0, cache.raw, lent.as_ptr()) };
        ctx.check(code, "initialising a memory cache for the delegated ticket")?;
        let mut minor = 0;
        // SAFETY: `self.0` is a live initiator credential from
        // gss_accept_sec_context; `cache.raw` is an initialised MEMORY cache
        // that gss_krb5_copy_ccache stores copies of the credentials into.
        let major = unsafe { gss_krb5_copy_ccache(&mut minor, self.0, cache.raw) };
        if major & GSS_ERROR_MASK != 0 {
            return Err(GssError::System(format!(
                "copying the delegated ticket: {}",
                status_message(major, minor, ptr::null_mut())
            )));
        }
        let credentials = read_all(ctx, &cache)?;
        if credentials.is_empty() {
            return Err(GssError::Refused(
                "the delegated credential holds no ticket".into(),
            ));
        }
        Ok(CredentialCache::new(client.clone(), credentials))
    }
}

impl Drop for Cred {
    fn drop(&mut self) {
        release_cred(&mut self.0);
    }
}

fn release_cred(cred: &mut gss_cred_id_t) {
    if cred.is_null() {
        return;
    }
    let mut minor = 0;
    // SAFETY: a credential libgssapi gave us, released once (it nulls the
    // handle).
    unsafe {
        gss_release_cred(&mut minor, cred);
    }
}

/// Every credential in a MEMORY cache, copied out.
fn read_all(
    ctx: &Context,
    cache: &MemoryCache<'_>,
) -> Result<Vec<crate::ccache::Credential>, GssError> {
    let mut cursor: *mut c_void = ptr::null_mut();
    // SAFETY: live context and cache; `cursor` is an out-pointer ended below.
    let code = unsafe { krb5_cc_start_seq_get(ctx.0, cache.raw, &mut cursor) };
    ctx.check(code, "reading the delegated ticket")?;
    let mut out = Vec::new();
    loop {
        // SAFETY: all-zero is the documented initial state of krb5_creds.
        let mut creds: k5::krb5_creds = unsafe { std::mem::zeroed() };
        // SAFETY: live context, cache and cursor; `creds` is writable.
        let code = unsafe { krb5_cc_next_cred(ctx.0, cache.raw, &mut cursor, &mut creds) };
        if code != 0 {
            // KRB5_CC_END; a memory cache has no other way to fail here.
            break;
        }
        // SAFETY: krb5_cc_next_cred filled `creds`; copied, then its
        // contents freed (and the session key zeroed) exactly once.
        unsafe {
            out.push(kinit::credential_from_raw(&creds));
            k5::krb5_free_cred_contents(ctx.0, &mut creds);
        }
    }
    // SAFETY: the cursor came from krb5_cc_start_seq_get on this cache.
    unsafe {
        krb5_cc_end_seq_get(ctx.0, cache.raw, &mut cursor);
    }
    Ok(out)
}

/// A GSS name; released on drop.
struct Name(gss_name_t);

impl Name {
    /// The Kerberos principal of a mechanism name, as `krb5_unparse_name`
    /// writes it, parsed back into components and realm.
    fn principal(&self) -> Result<Principal, GssError> {
        let mut shown = Buffer::empty();
        let mut minor = 0;
        // SAFETY: a live name from gss_accept_sec_context; `shown` is
        // released by its Drop; a null name type is allowed.
        let major = unsafe { gss_display_name(&mut minor, self.0, &mut shown.0, ptr::null_mut()) };
        if major & GSS_ERROR_MASK != 0 {
            return Err(GssError::System(format!(
                "naming the client: {}",
                status_message(major, minor, ptr::null_mut())
            )));
        }
        let text = String::from_utf8(shown.bytes())
            .map_err(|_| GssError::Refused("the client principal is not UTF-8".into()))?;
        Ok(kinit::parse_principal(&text)?)
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        if self.0.is_null() {
            return;
        }
        let mut minor = 0;
        // SAFETY: a name libgssapi gave us, released once.
        unsafe {
            gss_release_name(&mut minor, &mut self.0);
        }
    }
}

/// A security context; deleted on drop (pamkrb uses it for nothing after
/// the one accept).
struct SecurityContext(gss_ctx_id_t);

impl Drop for SecurityContext {
    fn drop(&mut self) {
        if self.0.is_null() {
            return;
        }
        let mut minor = 0;
        // SAFETY: a context libgssapi gave us, deleted once; a null output
        // token is allowed.
        unsafe {
            gss_delete_sec_context(&mut minor, &mut self.0, ptr::null_mut());
        }
    }
}

/// A buffer libgssapi filled; released on drop.
struct Buffer(gss_buffer_desc);

impl Buffer {
    fn empty() -> Self {
        Buffer(gss_buffer_desc {
            length: 0,
            value: ptr::null_mut(),
        })
    }

    fn bytes(&self) -> Vec<u8> {
        if self.0.value.is_null() || self.0.length == 0 {
            return Vec::new();
        }
        // SAFETY: libgssapi filled `value` with `length` bytes, valid until
        // released in Drop.
        unsafe { std::slice::from_raw_parts(self.0.value.cast::<u8>(), self.0.length) }.to_vec()
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        if self.0.value.is_null() {
            return;
        }
        let mut minor = 0;
        // SAFETY: a buffer libgssapi allocated, released once.
        unsafe {
            gss_release_buffer(&mut minor, &mut self.0);
        }
    }
}

fn is_krb5(mech: gss_OID) -> bool {
    if mech.is_null() {
        return false;
    }
    // SAFETY: a non-null mech from gss_accept_sec_context points to a static
    // OID of libgssapi, `length` bytes at `elements`.
    let oid = unsafe {
        let oid = &*mech;
        if oid.elements.is_null() {
            return false;
        }
        std::slice::from_raw_parts(oid.elements.cast::<u8>(), oid.length as usize)
    };
    KRB5_MECH_OIDS.contains(&oid)
}

/// libgssapi's messages for a major and minor status.
fn status_message(major: OM_uint32, minor: OM_uint32, mech: gss_OID) -> String {
    let mut parts = status_strings(major, GSS_C_GSS_CODE, ptr::null_mut());
    if minor != 0 {
        parts.extend(status_strings(minor, GSS_C_MECH_CODE, mech));
    }
    format!("{} (major {major:#x}, minor {minor})", parts.join(": "))
}

fn status_strings(code: OM_uint32, kind: c_int, mech: gss_OID) -> Vec<String> {
    let mut out = Vec::new();
    let mut message_context: OM_uint32 = 0;
    // A bounded loop: libgssapi returns one string per call, a handful at most.
    for _ in 0..8 {
        let mut text = Buffer::empty();
        let mut minor = 0;
        // SAFETY: valid out-pointers; `text` is released by its Drop.
        let major = unsafe {
            gss_display_status(
                &mut minor,
                code,
                kind,
                mech,
                &mut message_context,
                &mut text.0,
            )
        };
        if major & GSS_ERROR_MASK != 0 {
            break;
        }
        let shown = String::from_utf8_lossy(&text.bytes()).into_owned();
        if !shown.is_empty() {
            out.push(shown);
        }
        if message_context == 0 {
            break;
        }
    }
    out
}

fn c_string(value: &str) -> Result<CString, GssError> {
    CString::new(value).map_err(|_| GssError::System(format!("{value:?} contains a NUL byte")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_huge_tokens_are_refused_unparsed() {
        let acceptor = Acceptor {
            keytab: Path::new("/nonexistent/keytab"),
            replay_cache: None,
        };
        for token in [Vec::new(), vec![0x60; MAX_TOKEN_BYTES + 1]] {
            match accept(&acceptor, &token, None) {
                Err(GssError::Refused(_)) => {}
                other => panic!("{} bytes: {other:?}", token.len()),
            }
        }
    }

    #[test]
    fn a_missing_keytab_is_the_systems_failure() {
        let acceptor = Acceptor {
            keytab: Path::new("/nonexistent/keytab"),
            replay_cache: None,
        };
        assert!(matches!(
            accept(&acceptor, b"garbage", None),
            Err(GssError::Keytab(KeytabError::Missing { .. }))
        ));
    }

    #[test]
    fn a_passed_deadline_returns_nothing() {
        let acceptor = Acceptor {
            keytab: Path::new("/nonexistent/keytab"),
            replay_cache: None,
        };
        let past = Deadline::from_monotonic_secs(0.0);
        assert!(matches!(
            accept(&acceptor, b"garbage", past),
            Err(GssError::DeadlinePassed)
        ));
    }

    #[test]
    fn status_messages_name_the_failure() {
        // GSS_S_DEFECTIVE_TOKEN (9 << 16).
        let text = status_message(9 << 16, 0, ptr::null_mut());
        assert!(text.starts_with("Invalid token was supplied"), "{text}");
    }
}
