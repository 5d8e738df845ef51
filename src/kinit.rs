//! Keytab kinit in-process through MIT libkrb5: principal + keys → initial
//! ticket-granting ticket, returned as plain Rust data so that the caller
//! decides where and how it is written (see `cache_file`). Likewise password
//! kinit (principal + password, no prompter), and `kinit -R`: a renewable
//! TGT → its renewal, through a MEMORY cache.
//!
//! libkrb5 never opens the user's keytab file: `keytab` has read and parsed
//! it, and the principal's own keys are handed over in a MEMORY keytab that
//! lives only for the one request. A password reaches libkrb5 only as a
//! NUL-terminated copy in a buffer that is wiped on drop.
//!
//! Every libkrb5 handle lives in a small RAII wrapper that frees it in `Drop`,
//! so no error path can leak one.

use std::ffi::{CStr, CString};
use std::marker::PhantomData;
use std::ptr;

use crate::ccache::{Credential, CredentialCache, Keyblock, Principal, TaggedData};
use crate::keytab::{Keytab, KeytabEntry};
use crate::krb5_ffi as ffi;
use crate::secret::SecretBytes;

/// The longest password handed to libkrb5. Far above any real password; a
/// bound on what an unauthenticated login form can make the hub hash (the
/// string-to-key of AES is PBKDF2 over the whole password).
pub const MAX_PASSWORD_BYTES: usize = 8 * 1024;

/// The largest sign-in request body (JSON `{"password": ...}`) the hub and
/// the server read; anything larger is refused unread. Room for the longest
/// password even when every byte arrives as a six-byte `\uXXXX` escape.
pub const MAX_SIGN_IN_BYTES: usize = 64 * 1024;
const _: () = assert!(MAX_SIGN_IN_BYTES >= 6 * MAX_PASSWORD_BYTES + 64);

/// KDC_ERR_PREAUTH_FAILED and KRB5KRB_AP_ERR_BAD_INTEGRITY: the client's key
/// is not the principal's current key. With a password that is a wrong
/// password (MIT kinit says "Password incorrect" for both: the first when
/// the principal requires preauthentication, the second when the client
/// cannot decrypt the KDC's reply); with a keytab, a stale key.
pub(crate) const WRONG_KEY_CODES: [i32; 2] = [-1_765_328_360, -1_765_328_353];

/// A libkrb5 failure: what we were doing and libkrb5's own message, which
/// names the actual problem (missing keytab, unknown principal, KDC
/// unreachable, clock skew, …).
#[derive(Debug, thiserror::Error)]
pub enum KerberosError {
    #[error("{action}: {message} (krb5 error {code})")]
    Library {
        action: String,
        code: i32,
        message: String,
    },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The keytab holds no key for the requested principal (`principal` as
    /// libkrb5 parsed it, default realm filled in). The caller, which knows
    /// the keytab's path, turns this into a keytab error.
    #[error("no key for {principal}")]
    NoKey { principal: String },
    /// The KDC did not accept the password (one of [`WRONG_KEY_CODES`]): the
    /// user's failure, not the system's. `message` is libkrb5's, which never
    /// contains the password.
    #[error("the KDC rejected the password for {principal} ({message}, krb5 error {code})")]
    PasswordRejected {
        principal: String,
        code: i32,
        message: String,
    },
    /// KDC_ERR_KEY_EXPIRED: the password is right but has expired, or an
    /// administrator set "must change at next logon". Only a password
    /// change helps; pamkrb never changes passwords.
    #[error(
        "the password of {principal} has expired and must be changed before a ticket can be \
         issued ({message}, krb5 error {code})"
    )]
    PasswordExpired {
        principal: String,
        code: i32,
        message: String,
    },
    /// KDC_ERR_CLIENT_REVOKED: an Active Directory KDC answers this for a
    /// locked, a disabled and an expired account alike, so the message
    /// cannot say which.
    #[error(
        "the KDC refuses tickets for {principal}: the account is locked, disabled or expired \
         (the KDC does not say which; {message}, krb5 error {code})"
    )]
    AccountRevoked {
        principal: String,
        code: i32,
        message: String,
    },
}

/// KDC_ERR_KEY_EXPIRED: "Password has expired".
pub const KEY_EXPIRED_CODE: i32 = -1_765_328_361;
/// KDC_ERR_CLIENT_REVOKED: "Client's credentials have been revoked".
pub const CLIENT_REVOKED_CODE: i32 = -1_765_328_366;

impl KerberosError {
    /// The libkrb5 error code, when the failure came from libkrb5.
    pub fn code(&self) -> Option<i32> {
        match self {
            KerberosError::Library { code, .. }
            | KerberosError::PasswordRejected { code, .. }
            | KerberosError::PasswordExpired { code, .. }
            | KerberosError::AccountRevoked { code, .. } => Some(*code),
            KerberosError::InvalidArgument(_) | KerberosError::NoKey { .. } => None,
        }
    }
}

/// A krb5 library context. Each operation creates its own: contexts are not
/// thread-safe, and a fresh one re-reads `KRB5_CONFIG`, so a configuration
/// change needs no hub restart.
pub(crate) struct Context(pub(crate) ffi::krb5_context);

impl Context {
    pub(crate) fn new() -> Result<Self, KerberosError> {
        let mut ctx: ffi::krb5_context = ptr::null_mut();
        // SAFETY: `ctx` is a valid out-pointer; on success libkrb5 stores an
        // owned context in it, which `Drop` frees exactly once.
        let code = unsafe { ffi::krb5_init_context(&mut ctx) };
        if code != 0 || ctx.is_null() {
            // Without a context libkrb5 cannot format its own message.
            return Err(KerberosError::Library {
                action: "initialising the Kerberos library (check KRB5_CONFIG and krb5.conf)"
                    .into(),
                code,
                message: std::io::Error::from_raw_os_error(code.abs()).to_string(),
            });
        }
        Ok(Context(ctx))
    }

    pub(crate) fn check(
        &self,
        code: ffi::krb5_error_code,
        action: &str,
    ) -> Result<(), KerberosError> {
        if code == 0 {
            return Ok(());
        }
        Err(KerberosError::Library {
            action: action.to_owned(),
            code,
            message: self.message(code),
        })
    }

    /// Like [`Context::check`], but the two account-policy refusals an
    /// Active Directory KDC gives (expired password, revoked account) get
    /// their own variants naming `principal`.
    fn check_policy(
        &self,
        code: ffi::krb5_error_code,
        principal: &str,
        action: &str,
    ) -> Result<(), KerberosError> {
        let principal = crate::ccache::shorten(principal.to_owned());
        match code {
            KEY_EXPIRED_CODE => Err(KerberosError::PasswordExpired {
                principal,
                code,
                message: self.message(code),
            }),
            CLIENT_REVOKED_CODE => Err(KerberosError::AccountRevoked {
                principal,
                code,
                message: self.message(code),
            }),
            _ => self.check(code, action),
        }
    }

    fn message(&self, code: ffi::krb5_error_code) -> String {
        // SAFETY: the context is live; the returned string is owned by us
        // until freed with krb5_free_error_message, which we do after copying.
        unsafe {
            let raw = ffi::krb5_get_error_message(self.0, code);
            if raw.is_null() {
                return format!("unknown error {code}");
            }
            let text = CStr::from_ptr(raw).to_string_lossy().into_owned();
            ffi::krb5_free_error_message(self.0, raw);
            text
        }
    }

    fn default_realm(&self) -> Result<String, KerberosError> {
        let mut raw: *mut libc::c_char = ptr::null_mut();
        // SAFETY: valid context and out-pointer.
        let code = unsafe { ffi::krb5_get_default_realm(self.0, &mut raw) };
        self.check(code, "reading default_realm from krb5.conf")?;
        // SAFETY: on success `raw` is a NUL-terminated string owned by us,
        // copied before it is freed.
        unsafe {
            let realm = CStr::from_ptr(raw).to_string_lossy().into_owned();
            ffi::krb5_free_default_realm(self.0, raw);
            Ok(realm)
        }
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: the context was created by krb5_init_context and every
        // handle borrowing it has been dropped first (they borrow `&Context`).
        unsafe { ffi::krb5_free_context(self.0) }
    }
}

struct OwnedPrincipal<'c> {
    ctx: &'c Context,
    raw: ffi::krb5_principal,
}

impl<'c> OwnedPrincipal<'c> {
    fn parse(ctx: &'c Context, name: &str) -> Result<Self, KerberosError> {
        let c_name = c_string(name, "principal")?;
        let mut raw: ffi::krb5_principal = ptr::null_mut();
        // SAFETY: valid context, NUL-terminated name and out-pointer.
        let code = unsafe { ffi::krb5_parse_name(ctx.0, c_name.as_ptr(), &mut raw) };
        ctx.check(code, &format!("parsing principal {name:?}"))?;
        Ok(OwnedPrincipal { ctx, raw })
    }

    /// `name` as an enterprise principal (`kinit -E`): the whole name up to
    /// an optional second `@REALM` is one component, so a UPN such as
    /// `alice@corp.example` is sent to the default realm's KDC as is,
    /// instead of naming a realm nobody serves.
    fn parse_enterprise(ctx: &'c Context, name: &str) -> Result<Self, KerberosError> {
        let c_name = c_string(name, "principal")?;
        let mut raw: ffi::krb5_principal = ptr::null_mut();
        // SAFETY: valid context, NUL-terminated name, a documented flag and
        // an out-pointer.
        let code = unsafe {
            ffi::krb5_parse_name_flags(
                ctx.0,
                c_name.as_ptr(),
                ffi::KRB5_PRINCIPAL_PARSE_ENTERPRISE,
                &mut raw,
            )
        };
        ctx.check(code, &format!("parsing enterprise principal {name:?}"))?;
        Ok(OwnedPrincipal { ctx, raw })
    }
}

impl Drop for OwnedPrincipal<'_> {
    fn drop(&mut self) {
        // SAFETY: `raw` came from krb5_parse_name in this context.
        unsafe { ffi::krb5_free_principal(self.ctx.0, self.raw) }
    }
}

/// A MEMORY keytab holding copies of the keys for one request.
///
/// MIT keeps memory keytabs in a process-global list keyed by name, with a
/// reference count that `krb5_kt_resolve` raises and `krb5_kt_close` lowers;
/// at zero the keytab is unlinked and its entries freed, the key copies
/// through `krb5_free_keyblock_contents`, which zeroes them (`kt_memory.c`,
/// `krb5_mkt_close`; krb5 1.20 has no `krb5_kt_destroy`). A random name per
/// request means no other resolve in the process shares it, so our one close
/// destroys it. `krb5_kt_add_entry` copies the principal and key contents,
/// so the caller's `SecretBytes` stay the caller's to wipe.
pub(crate) struct MemoryKeytab<'c> {
    ctx: &'c Context,
    pub(crate) raw: ffi::krb5_keytab,
    pub(crate) name: String,
}

impl<'c> MemoryKeytab<'c> {
    pub(crate) fn new(ctx: &'c Context) -> Result<Self, KerberosError> {
        let suffix = crate::cache_file::random_hex().map_err(|errno| KerberosError::Library {
            action: "naming a memory keytab".into(),
            code: errno as i32,
            message: errno.desc().into(),
        })?;
        let name = format!(
            "MEMORY:pamkrb-{}",
            String::from_utf8_lossy(&suffix).into_owned()
        );
        let c_name = c_string(&name, "keytab")?;
        let mut raw: ffi::krb5_keytab = ptr::null_mut();
        // SAFETY: valid context, NUL-terminated name and out-pointer.
        let code = unsafe { ffi::krb5_kt_resolve(ctx.0, c_name.as_ptr(), &mut raw) };
        ctx.check(code, "creating a memory keytab")?;
        Ok(MemoryKeytab { ctx, raw, name })
    }

    /// Adds `entry`'s key under `principal` (the request's own, already
    /// parsed: the entry was selected because it names the same principal).
    fn add(
        &self,
        principal: &OwnedPrincipal<'_>,
        entry: &KeytabEntry,
    ) -> Result<(), KerberosError> {
        let key = entry.key.as_bytes();
        let length = libc::c_uint::try_from(key.len())
            .map_err(|_| KerberosError::InvalidArgument("key too long".into()))?;
        let mut raw = ffi::krb5_keytab_entry {
            magic: 0,
            principal: principal.raw,
            // The file stores an unsigned 32-bit time; libkrb5 keeps the
            // same bits in a signed field.
            timestamp: entry.timestamp as i32,
            vno: entry.kvno,
            key: ffi::krb5_keyblock {
                magic: 0,
                enctype: entry.enctype,
                length,
                // libkrb5 only reads through this pointer (it copies the
                // contents), so lending our immutable buffer is sound.
                contents: key.as_ptr().cast_mut(),
            },
        };
        // SAFETY: the keytab is live; `raw` points to a principal and a key
        // buffer that outlive the call, and krb5_mkt_add copies both.
        let code = unsafe { ffi::krb5_kt_add_entry(self.ctx.0, self.raw, &mut raw) };
        self.ctx.check(code, "adding a key to the memory keytab")
    }

    /// libkrb5 names the keytab in some messages; show the user's file instead.
    fn rename_in(&self, text: String, shown: &str) -> String {
        let bare = self.name.trim_start_matches("MEMORY:");
        text.replace(&self.name, shown).replace(bare, shown)
    }
}

impl Drop for MemoryKeytab<'_> {
    fn drop(&mut self) {
        // SAFETY: `raw` came from krb5_kt_resolve in this context and is
        // closed once; with the only reference gone, MIT frees the entries
        // and zeroes the key copies. A close error cannot be acted upon here.
        unsafe {
            ffi::krb5_kt_close(self.ctx.0, self.raw);
        }
    }
}

struct InitCredsOptions<'c> {
    ctx: &'c Context,
    raw: *mut ffi::krb5_get_init_creds_opt,
}

impl<'c> InitCredsOptions<'c> {
    fn new(ctx: &'c Context) -> Result<Self, KerberosError> {
        let mut raw = ptr::null_mut();
        // SAFETY: valid context and out-pointer.
        let code = unsafe { ffi::krb5_get_init_creds_opt_alloc(ctx.0, &mut raw) };
        ctx.check(code, "allocating ticket request options")?;
        Ok(InitCredsOptions { ctx, raw })
    }

    /// Options asking for these lifetimes; `None` lets krb5.conf and the KDC
    /// decide.
    fn with_lifetimes(
        ctx: &'c Context,
        lifetime: Option<u32>,
        renew_lifetime: Option<u32>,
    ) -> Result<Self, KerberosError> {
        let options = InitCredsOptions::new(ctx)?;
        // Ask the KDC for the client's canonical name (`kinit -C`) on every
        // AS request: an Active Directory KDC then answers `ADALICE` or an
        // enterprise name with the account's own `adalice@REALM`, and that
        // answer is what the cache holds. An MIT KDC returns the name asked
        // for unless it is an alias.
        // SAFETY: `options.raw` is a live options structure.
        unsafe { ffi::krb5_get_init_creds_opt_set_canonicalize(options.raw, 1) }
        if let Some(lifetime) = lifetime {
            // SAFETY: `options.raw` is a live options structure.
            unsafe {
                ffi::krb5_get_init_creds_opt_set_tkt_life(options.raw, clamp_deltat(lifetime))
            }
        }
        if let Some(renew) = renew_lifetime {
            // SAFETY: `options.raw` is a live options structure.
            unsafe { ffi::krb5_get_init_creds_opt_set_renew_life(options.raw, clamp_deltat(renew)) }
        }
        Ok(options)
    }
}

impl Drop for InitCredsOptions<'_> {
    fn drop(&mut self) {
        // SAFETY: `raw` came from krb5_get_init_creds_opt_alloc.
        unsafe { ffi::krb5_get_init_creds_opt_free(self.ctx.0, self.raw) }
    }
}

/// Credentials filled in by libkrb5; their contents are freed in `Drop`.
struct Creds<'c> {
    ctx: &'c Context,
    raw: ffi::krb5_creds,
}

impl Drop for Creds<'_> {
    fn drop(&mut self) {
        // SAFETY: `raw` was zero-initialised and then filled in by
        // krb5_get_init_creds_keytab, krb5_get_init_creds_password or
        // krb5_get_renewed_creds; freeing the contents of a zeroed or filled
        // structure is valid (and zeroes the session key).
        unsafe { ffi::krb5_free_cred_contents(self.ctx.0, &mut self.raw) }
    }
}

/// A MEMORY credential cache for one request, destroyed on drop.
///
/// `krb5_cc_new_unique` gives it a name no other resolve in the process
/// shares; `krb5_cc_destroy` unlinks it from MIT's process-global table and
/// frees its credentials through `krb5_free_cred_contents`, which zeroes the
/// session keys (`cc_memory.c`). Nothing of it ever reaches a file.
pub(crate) struct MemoryCache<'c> {
    ctx: &'c Context,
    pub(crate) raw: ffi::krb5_ccache,
}

impl<'c> MemoryCache<'c> {
    pub(crate) fn new(ctx: &'c Context) -> Result<Self, KerberosError> {
        let mut raw: ffi::krb5_ccache = ptr::null_mut();
        // SAFETY: valid context, a static NUL-terminated type name, a null
        // hint (allowed) and an out-pointer.
        let code =
            unsafe { ffi::krb5_cc_new_unique(ctx.0, c"MEMORY".as_ptr(), ptr::null(), &mut raw) };
        ctx.check(code, "creating a memory credential cache")?;
        Ok(MemoryCache { ctx, raw })
    }
}

impl Drop for MemoryCache<'_> {
    fn drop(&mut self) {
        // SAFETY: `raw` came from krb5_cc_new_unique in this context and is
        // destroyed once; destroy also releases the handle. An error cannot
        // be acted upon here.
        unsafe {
            ffi::krb5_cc_destroy(self.ctx.0, self.raw);
        }
    }
}

/// A `krb5_data` that lends `bytes` to libkrb5 for a call that only reads
/// (and copies) it.
fn lent_data(bytes: &[u8]) -> Result<ffi::krb5_data, KerberosError> {
    Ok(ffi::krb5_data {
        magic: 0,
        length: c_length(bytes.len())?,
        data: bytes.as_ptr().cast_mut().cast(),
    })
}

fn c_length(len: usize) -> Result<libc::c_uint, KerberosError> {
    libc::c_uint::try_from(len)
        .map_err(|_| KerberosError::InvalidArgument("a credential field is too long".into()))
}

/// Our `Principal` in libkrb5's layout, borrowing its bytes: only for calls
/// that read and copy a principal, never for one libkrb5 frees.
pub(crate) struct LentPrincipal<'a> {
    /// Pointed to by `raw.data`; a Vec's buffer does not move with the Vec.
    _components: Vec<ffi::krb5_data>,
    raw: ffi::krb5_principal_data,
    _bytes: PhantomData<&'a Principal>,
}

impl<'a> LentPrincipal<'a> {
    pub(crate) fn new(principal: &'a Principal) -> Result<Self, KerberosError> {
        let mut components = principal
            .components
            .iter()
            .map(|c| lent_data(c))
            .collect::<Result<Vec<_>, _>>()?;
        let raw = ffi::krb5_principal_data {
            magic: 0,
            realm: lent_data(&principal.realm)?,
            data: components.as_mut_ptr(),
            // At most 64 components (`ccache` caps them).
            length: i32::try_from(components.len())
                .map_err(|_| KerberosError::InvalidArgument("too many name components".into()))?,
            type_: principal.name_type,
        };
        Ok(LentPrincipal {
            _components: components,
            raw,
            _bytes: PhantomData,
        })
    }

    pub(crate) fn as_ptr(&mut self) -> ffi::krb5_principal {
        &mut self.raw
    }
}

/// A null-terminated `krb5_address` / `krb5_authdata` list lending our bytes.
struct LentTaggedList<'a> {
    _entries: Vec<ffi::krb5_tagged_octets>,
    /// Pointers into `_entries`' buffer, then a null.
    pointers: Vec<*mut ffi::krb5_tagged_octets>,
    _bytes: PhantomData<&'a TaggedData>,
}

impl<'a> LentTaggedList<'a> {
    fn new(list: &'a [TaggedData]) -> Result<Self, KerberosError> {
        let mut entries = list
            .iter()
            .map(|item| {
                Ok(ffi::krb5_tagged_octets {
                    magic: 0,
                    // MIT reads these 16-bit file fields as unsigned.
                    tag: i32::from(item.tag),
                    length: c_length(item.data.len())?,
                    contents: item.data.as_ptr().cast_mut(),
                })
            })
            .collect::<Result<Vec<_>, KerberosError>>()?;
        let mut pointers: Vec<_> = entries.iter_mut().map(ptr::from_mut).collect();
        pointers.push(ptr::null_mut());
        Ok(LentTaggedList {
            _entries: entries,
            pointers,
            _bytes: PhantomData,
        })
    }

    /// Null for an empty list, as libkrb5 itself fills in credentials.
    fn as_ptr(&mut self) -> *mut *mut ffi::krb5_tagged_octets {
        if self.pointers.len() == 1 {
            ptr::null_mut()
        } else {
            self.pointers.as_mut_ptr()
        }
    }
}

/// Stores a copy of `cred` in `cache` (libkrb5 copies every field, so our
/// buffers stay ours to wipe).
fn store(cache: &MemoryCache<'_>, cred: &Credential) -> Result<(), KerberosError> {
    let mut client = LentPrincipal::new(&cred.client)?;
    let mut server = LentPrincipal::new(&cred.server)?;
    let mut addresses = LentTaggedList::new(&cred.addresses)?;
    let mut authdata = LentTaggedList::new(&cred.authdata)?;
    let mut raw = ffi::krb5_creds {
        magic: 0,
        client: client.as_ptr(),
        server: server.as_ptr(),
        keyblock: ffi::krb5_keyblock {
            magic: 0,
            enctype: i32::from(cred.keyblock.enctype),
            length: c_length(cred.keyblock.data.len())?,
            contents: cred.keyblock.data.as_ptr().cast_mut(),
        },
        // The file's unsigned times, in libkrb5's signed fields (same bits).
        times: ffi::krb5_ticket_times {
            authtime: cred.authtime as i32,
            starttime: cred.starttime as i32,
            endtime: cred.endtime as i32,
            renew_till: cred.renew_till as i32,
        },
        is_skey: ffi::krb5_boolean::from(cred.is_skey),
        ticket_flags: cred.ticket_flags as i32,
        addresses: addresses.as_ptr(),
        ticket: lent_data(&cred.ticket)?,
        second_ticket: lent_data(&cred.second_ticket)?,
        authdata: authdata.as_ptr(),
    };
    // SAFETY: every pointer in `raw` refers to a buffer borrowed from `cred`
    // or to the lent views above, all alive until the end of this function;
    // krb5_mcc_store copies the credentials (krb5_copy_creds) and writes
    // through none of them.
    let code = unsafe { ffi::krb5_cc_store_cred(cache.ctx.0, cache.raw, &mut raw) };
    cache
        .ctx
        .check(code, "storing the ticket in a memory credential cache")
}

/// Parses `name` as libkrb5 does (the default realm fills in a missing
/// one), so a name compares with a cache's principals by the same rule as
/// `kinit_keytab` applies. A plain `name@REALM` is parsed without a krb5
/// context (loading the profile costs far more than the compare it serves,
/// which runs on every status poll); anything else goes to
/// `krb5_parse_name`.
pub fn parse_principal(name: &str) -> Result<Principal, KerberosError> {
    if let Some(principal) = Principal::parse_with_realm(name) {
        return Ok(principal);
    }
    let ctx = Context::new()?;
    let principal = OwnedPrincipal::parse(&ctx, name)?;
    // SAFETY: a valid principal from krb5_parse_name.
    Ok(unsafe { principal_from_raw(principal.raw) })
}

/// Asks the KDC to renew `tgt` (`kinit -R`), a TGT of `default_principal`
/// that the caller has checked is renewable, and returns the renewed one.
///
/// libkrb5's renewal reads its TGT from a credential cache; it gets a
/// MEMORY cache holding only this credential, so the session key never
/// touches a file and nothing a user could have planted is involved.
pub fn renew_tgt(
    default_principal: &Principal,
    tgt: &Credential,
    cache_name: &str,
) -> Result<Credential, KerberosError> {
    let ctx = Context::new()?;
    let cache = MemoryCache::new(&ctx)?;
    let mut client = LentPrincipal::new(default_principal)?;
    // SAFETY: live context and cache; krb5_mcc_initialize copies the principal.
    let code = unsafe { ffi::krb5_cc_initialize(ctx.0, cache.raw, client.as_ptr()) };
    ctx.check(code, "initialising a memory credential cache")?;
    store(&cache, tgt)?;

    let mut renewed = Creds {
        ctx: &ctx,
        // SAFETY: all-zero is the documented initial state of krb5_creds.
        raw: unsafe { std::mem::zeroed() },
    };
    // SAFETY: live context and cache; `client` lives until the end of the
    // function and is only read (compared and copied); a null service
    // means the TGT of the client's realm; `renewed.raw` is writable and
    // freed by `Creds`' Drop.
    let code = unsafe {
        ffi::krb5_get_renewed_creds(
            ctx.0,
            &mut renewed.raw,
            client.as_ptr(),
            cache.raw,
            ptr::null(),
        )
    };
    let name = default_principal.to_string_lossy();
    ctx.check_policy(
        code,
        &name,
        &format!("renewing the ticket of {name} from {cache_name}"),
    )?;
    // SAFETY: on success libkrb5 filled `renewed.raw` with valid credentials.
    Ok(unsafe { credential_from_raw(&renewed.raw) })
}

fn c_string(value: &str, what: &str) -> Result<CString, KerberosError> {
    CString::new(value)
        .map_err(|_| KerberosError::InvalidArgument(format!("{what} contains a NUL byte")))
}

/// libkrb5's name for an enctype number (`aes256-cts-hmac-sha1-96`), or
/// `unknown enctype N`. Needs no context: it reads a static table.
pub fn enctype_name(enctype: i32) -> String {
    let mut buffer = [0 as libc::c_char; 64];
    // SAFETY: the buffer and its length describe a live, writable array;
    // libkrb5 writes a NUL-terminated name into it or fails.
    let code = unsafe { ffi::krb5_enctype_to_name(enctype, 0, buffer.as_mut_ptr(), buffer.len()) };
    if code != 0 {
        return format!("unknown enctype {enctype}");
    }
    // SAFETY: on success the buffer holds a NUL-terminated string.
    unsafe { CStr::from_ptr(buffer.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// The enctypes this host's libkrb5 permits for session keys
/// (`permitted_enctypes` in krb5.conf, or its default, with
/// `allow_weak_crypto` applied), in preference order.
pub fn permitted_enctypes() -> Result<Vec<i32>, KerberosError> {
    let ctx = Context::new()?;
    let mut list: *mut ffi::krb5_enctype = ptr::null_mut();
    // SAFETY: valid context and out-pointer.
    let code = unsafe { ffi::krb5_get_permitted_enctypes(ctx.0, &mut list) };
    ctx.check(code, "reading permitted_enctypes from krb5.conf")?;
    let mut out = Vec::new();
    // SAFETY: on success `list` is a zero-terminated array owned by us,
    // read up to its terminator and freed once.
    unsafe {
        let mut i = 0;
        while *list.add(i) != 0 {
            out.push(*list.add(i));
            i += 1;
        }
        ffi::krb5_free_enctypes(ctx.0, list);
    }
    Ok(out)
}

/// The realm of `default_realm` in the active krb5.conf (`KRB5_CONFIG`).
pub fn default_realm() -> Result<String, KerberosError> {
    Context::new()?.default_realm()
}

/// What to ask the KDC for: an initial ticket for `principal`, whatever
/// the key comes from (a keytab or a password).
pub struct TicketRequest<'a> {
    pub principal: &'a str,
    /// Requested ticket lifetime in seconds; `None` lets krb5.conf and the KDC decide.
    pub lifetime: Option<u32>,
    /// Requested renewable lifetime in seconds; `None` lets krb5.conf decide.
    pub renew_lifetime: Option<u32>,
    /// Send `principal` as an enterprise name (a UPN, `kinit -E`). Password
    /// requests only: a keytab's keys are found under the plain name.
    pub enterprise: bool,
}

/// A keytab whose key armors password requests (FAST, RFC 6113): the
/// host's machine keytab, say. `name` is shown in messages.
pub struct Armor<'a> {
    pub keytab: &'a Keytab,
    pub name: &'a str,
}

/// What an AS exchange returned: the cache to install, and the password
/// expiry the KDC reported (seconds since the epoch), if any.
#[derive(Debug)]
pub struct Issued {
    pub cache: CredentialCache,
    pub password_expires_at: Option<u32>,
}

/// An initial ticket for `client` from `entries` (copied into a memory
/// keytab for the one request), with libkrb5's messages naming
/// `keytab_name` instead of the memory keytab.
fn creds_from_keys<'c, 'e>(
    ctx: &'c Context,
    client: &OwnedPrincipal<'_>,
    entries: impl Iterator<Item = &'e KeytabEntry>,
    options: &InitCredsOptions<'_>,
    keytab_name: &str,
    action: &str,
) -> Result<Creds<'c>, KerberosError> {
    let memory = MemoryKeytab::new(ctx)?;
    for entry in entries {
        memory.add(client, entry)?;
    }
    let mut creds = Creds {
        ctx,
        // SAFETY: krb5_creds is a plain C struct for which all-zero bytes
        // (null pointers, zero lengths) is the documented initial state.
        raw: unsafe { std::mem::zeroed() },
    };
    // SAFETY: every pointer argument is live for the duration of the call;
    // a null in_tkt_service asks for the TGT of the client's realm.
    let code = unsafe {
        ffi::krb5_get_init_creds_keytab(
            ctx.0,
            &mut creds.raw,
            client.raw,
            memory.raw,
            0,
            ptr::null(),
            options.raw,
        )
    };
    // SAFETY: `client.raw` is a valid principal.
    let shown = unsafe { principal_from_raw(client.raw) }.to_string_lossy();
    ctx.check_policy(code, &shown, action)
        .map_err(|err| match err {
            KerberosError::Library {
                action,
                code,
                message,
            } => KerberosError::Library {
                action,
                code,
                message: memory.rename_in(message, keytab_name),
            },
            other => other,
        })?;
    Ok(creds)
}

/// Obtains an initial ticket for `request.principal` from its keys in
/// `keytab` (the parsed file `keytab_name`, named in messages) and returns a
/// credential cache holding it, ready to be serialised.
///
/// Only entries for the requested principal are handed to libkrb5: a keytab
/// can only ever yield a ticket for its owner's own principal, whatever else
/// the file holds. The cache holds the name the KDC answered with
/// (canonicalization is requested), which an AD KDC may spell differently.
pub fn kinit_keytab(
    request: &TicketRequest<'_>,
    keytab: &Keytab,
    keytab_name: &str,
) -> Result<CredentialCache, KerberosError> {
    let ctx = Context::new()?;
    let client = OwnedPrincipal::parse(&ctx, request.principal)?;
    // SAFETY: `client.raw` is a valid principal from krb5_parse_name.
    let wanted = unsafe { principal_from_raw(client.raw) };
    let mut keys = keytab.entries_for(&wanted).peekable();
    if keys.peek().is_none() {
        return Err(KerberosError::NoKey {
            principal: wanted.to_string_lossy(),
        });
    }
    let options = InitCredsOptions::with_lifetimes(&ctx, request.lifetime, request.renew_lifetime)?;
    let action = format!(
        "getting a ticket for {} from keytab {keytab_name}",
        request.principal
    );
    let creds = creds_from_keys(&ctx, &client, keys, &options, keytab_name, &action)?;
    Ok(initial_cache(&creds))
}

/// The principal of `keytab` that armors requests: the first one-component
/// name ending in `$` (an Active Directory machine account, `HOST$@REALM`,
/// the name `net ads join` keys its keytab under), else the first entry's.
fn armor_principal(keytab: &Keytab) -> Option<&Principal> {
    let machine = keytab
        .entries
        .iter()
        .map(|e| &e.principal)
        .find(|p| p.components.len() == 1 && p.components[0].last() == Some(&b'$'));
    machine.or_else(|| keytab.entries.first().map(|e| &e.principal))
}

/// A MEMORY cache holding a TGT obtained with `armor`'s key: the armor
/// that `krb5_get_init_creds_opt_set_fast_ccache` wraps a request in.
fn armor_cache<'c>(ctx: &'c Context, armor: &Armor<'_>) -> Result<MemoryCache<'c>, KerberosError> {
    let action = format!("getting FAST armor from keytab {}", armor.name);
    let Some(principal) = armor_principal(armor.keytab) else {
        return Err(KerberosError::Library {
            action,
            code: 0,
            message: "the keytab holds no keys".into(),
        });
    };
    let name = principal.to_string_lossy();
    let client = OwnedPrincipal::parse(ctx, &name)?;
    let options = InitCredsOptions::new(ctx)?;
    let creds = creds_from_keys(
        ctx,
        &client,
        armor.keytab.entries_for(principal),
        &options,
        armor.name,
        &format!("{action} (as {name})"),
    )?;
    let mut creds = creds;
    let cache = MemoryCache::new(ctx)?;
    // SAFETY: live context and cache; the principal is valid and copied by
    // the memory cache.
    let code = unsafe { ffi::krb5_cc_initialize(ctx.0, cache.raw, creds.raw.client) };
    ctx.check(code, "initialising the FAST armor cache")?;
    // SAFETY: live context and cache; krb5_mcc_store copies the filled
    // credentials, which `creds` still owns and frees once.
    let code = unsafe { ffi::krb5_cc_store_cred(ctx.0, cache.raw, &mut creds.raw) };
    ctx.check(code, "storing the FAST armor ticket")?;
    Ok(cache)
}

/// Receives the expiry times libkrb5's expire callback reports.
#[derive(Default)]
struct Expiry {
    password: Option<u32>,
}

/// `krb5_expire_callback_func`: keeps the password expiry for the caller.
/// With last-req entries (`is_last_req`) a non-zero password time is the
/// KDC's own warning; without, libkrb5 passes the reply's `key-expiration`,
/// which is the password's (or the account's) end: either is worth telling.
unsafe extern "C" fn note_expiry(
    _context: ffi::krb5_context,
    data: *mut libc::c_void,
    password_expiration: ffi::krb5_timestamp,
    _account_expiration: ffi::krb5_timestamp,
    _is_last_req: ffi::krb5_boolean,
) {
    if data.is_null() || password_expiration == 0 {
        return;
    }
    // SAFETY: `data` is the `&mut Expiry` registered with this callback in
    // `kinit_password`, alive for the whole krb5_get_init_creds_password
    // call during which libkrb5 invokes us, on the same thread.
    let expiry = unsafe { &mut *data.cast::<Expiry>() };
    // libkrb5's signed time holds the KDC's unsigned seconds.
    expiry.password = Some(password_expiration as u32);
}

/// Obtains an initial ticket for `request.principal` with its password (as `kinit`
/// does, but in-process and without a prompter) and returns a credential
/// cache holding it, ready to be serialised, with the password expiry the
/// KDC reported (an Active Directory KDC reports it on every login).
///
/// The password is refused before libkrb5 is loaded with it when it is
/// empty, contains a NUL byte (C would cut it there and try a different
/// password than the one typed) or is longer than [`MAX_PASSWORD_BYTES`].
/// A password the KDC does not accept is [`KerberosError::PasswordRejected`];
/// an expired one [`KerberosError::PasswordExpired`], a locked or disabled
/// account [`KerberosError::AccountRevoked`]; every other failure (unknown
/// principal, KDC unreachable, …) is [`KerberosError::Library`] with
/// libkrb5's code. With `armor`, the request is wrapped in FAST armor from
/// that keytab and fails if the KDC does not support FAST.
pub fn kinit_password(
    request: &TicketRequest<'_>,
    password: &SecretBytes,
    armor: Option<&Armor<'_>>,
) -> Result<Issued, KerberosError> {
    let password = c_password(password)?;
    let principal = request.principal;
    let ctx = Context::new()?;
    let client = if request.enterprise {
        OwnedPrincipal::parse_enterprise(&ctx, principal)?
    } else {
        OwnedPrincipal::parse(&ctx, principal)?
    };
    // Declared before the options, so dropped after them: the options keep
    // the armor cache's handle (not a copy).
    let armor_cache = armor.map(|armor| armor_cache(&ctx, armor)).transpose()?;
    let options = InitCredsOptions::with_lifetimes(&ctx, request.lifetime, request.renew_lifetime)?;
    if let Some(cache) = &armor_cache {
        // SAFETY: live context, options and cache; libkrb5 stores the cache
        // handle in the options, which are dropped before the cache.
        let code =
            unsafe { ffi::krb5_get_init_creds_opt_set_fast_ccache(ctx.0, options.raw, cache.raw) };
        ctx.check(code, "setting the FAST armor cache")?;
        // SAFETY: live context and options.
        let code = unsafe {
            ffi::krb5_get_init_creds_opt_set_fast_flags(ctx.0, options.raw, ffi::KRB5_FAST_REQUIRED)
        };
        ctx.check(code, "requiring FAST")?;
    }
    let mut expiry = Expiry::default();
    // SAFETY: live context and options; `expiry` outlives every use of the
    // pointer (the callback only runs inside krb5_get_init_creds_password
    // below, and the options are dropped before `expiry` is read).
    let code = unsafe {
        ffi::krb5_get_init_creds_opt_set_expire_callback(
            ctx.0,
            options.raw,
            Some(note_expiry),
            ptr::from_mut(&mut expiry).cast(),
        )
    };
    ctx.check(code, "setting the password expiry callback")?;
    let mut creds = Creds {
        ctx: &ctx,
        // SAFETY: all-zero is the documented initial state of krb5_creds.
        raw: unsafe { std::mem::zeroed() },
    };
    // SAFETY: every pointer argument is live for the duration of the call;
    // `password` is NUL-terminated (checked by `c_password`) and only read:
    // libkrb5 points a krb5_data at it and zeroes the keys it derives. A
    // null prompter means libkrb5 fails instead of asking anything (an
    // expired password is an error, not a password change); a null
    // in_tkt_service asks for the TGT of the client's realm.
    let code = unsafe {
        ffi::krb5_get_init_creds_password(
            ctx.0,
            &mut creds.raw,
            client.raw,
            password.as_bytes().as_ptr().cast(),
            None,
            ptr::null_mut(),
            0,
            ptr::null(),
            options.raw,
        )
    };
    drop(password);
    drop(options);
    // SAFETY: `client.raw` is a valid principal from krb5_parse_name(_flags).
    let name = unsafe { principal_from_raw(client.raw) }.to_string_lossy();
    if WRONG_KEY_CODES.contains(&code) {
        return Err(KerberosError::PasswordRejected {
            principal: crate::ccache::shorten(name),
            code,
            message: ctx.message(code),
        });
    }
    ctx.check_policy(
        code,
        &name,
        &format!("getting a ticket for {principal} with a password"),
    )?;
    Ok(Issued {
        cache: initial_cache(&creds),
        password_expires_at: expiry.password,
    })
}

/// A NUL-terminated copy of `password` for libkrb5, in a buffer that is
/// wiped on drop and allocated once at its final size (a reallocation would
/// leave an unwiped copy behind).
fn c_password(password: &SecretBytes) -> Result<SecretBytes, KerberosError> {
    let bytes = password.as_bytes();
    if bytes.is_empty() {
        // libkrb5 would turn to the (absent) prompter for one.
        return Err(KerberosError::InvalidArgument("empty password".into()));
    }
    if bytes.contains(&0) {
        return Err(KerberosError::InvalidArgument(
            "password contains a NUL byte".into(),
        ));
    }
    if bytes.len() > MAX_PASSWORD_BYTES {
        return Err(KerberosError::InvalidArgument(format!(
            "password longer than {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    let mut terminated = Vec::with_capacity(bytes.len() + 1);
    terminated.extend_from_slice(bytes);
    terminated.push(0);
    Ok(SecretBytes::new(terminated))
}

/// The cache `kinit` would write for freshly obtained initial credentials.
fn initial_cache(creds: &Creds<'_>) -> CredentialCache {
    // SAFETY: only called after libkrb5 filled `creds.raw` successfully with
    // valid principals and counted buffers, alive until `creds` is dropped.
    let credential = unsafe { credential_from_raw(&creds.raw) };
    let mut cache = CredentialCache::new(credential.client.clone(), vec![credential]);
    if let Some(offset) = time_offset(creds.ctx) {
        // Header tag 1 records the KDC clock offset, as MIT's FILE cache
        // does, so later users of the cache correct for a skewed clock.
        cache.header.push(TaggedData {
            tag: 1,
            data: offset,
        });
    }
    cache
}

fn clamp_deltat(seconds: u32) -> ffi::krb5_deltat {
    i32::try_from(seconds).unwrap_or(i32::MAX)
}

fn time_offset(ctx: &Context) -> Option<Vec<u8>> {
    let (mut seconds, mut micros) = (0, 0);
    // SAFETY: valid context and out-pointers.
    let code = unsafe { ffi::krb5_get_time_offsets(ctx.0, &mut seconds, &mut micros) };
    if code != 0 || (seconds == 0 && micros == 0) {
        return None;
    }
    let mut data = seconds.to_be_bytes().to_vec();
    data.extend_from_slice(&micros.to_be_bytes());
    Some(data)
}

/// Copies a counted buffer. # Safety: `ptr` must be valid for `len` bytes or null.
unsafe fn bytes(ptr: *const u8, len: libc::c_uint) -> Vec<u8> {
    if ptr.is_null() || len == 0 {
        return Vec::new();
    }
    // SAFETY: the caller guarantees `ptr` is valid for `len` bytes.
    unsafe { std::slice::from_raw_parts(ptr, len as usize) }.to_vec()
}

/// # Safety: `data` must be a valid krb5_data.
unsafe fn data_bytes(data: &ffi::krb5_data) -> Vec<u8> {
    // SAFETY: forwarded from the caller.
    unsafe { bytes(data.data.cast(), data.length) }
}

/// # Safety: `raw` must point to a valid principal.
pub(crate) unsafe fn principal_from_raw(raw: ffi::krb5_principal) -> Principal {
    // SAFETY: forwarded from the caller.
    let p = unsafe { &*raw };
    let count = usize::try_from(p.length).unwrap_or(0);
    let components = (0..count)
        // SAFETY: `p.data` holds `p.length` krb5_data entries.
        .map(|i| unsafe { data_bytes(&*p.data.add(i)) })
        .collect();
    Principal {
        name_type: p.type_,
        // SAFETY: the realm is a valid krb5_data of the same principal.
        realm: unsafe { data_bytes(&p.realm) },
        components,
    }
}

/// # Safety: `list` must be null or a null-terminated array of valid entries.
unsafe fn tagged_list(list: *mut *mut ffi::krb5_tagged_octets) -> Vec<TaggedData> {
    let mut out = Vec::new();
    if list.is_null() {
        return out;
    }
    let mut i = 0;
    loop {
        // SAFETY: the array is null-terminated, so reading up to and including
        // the terminator stays in bounds.
        let entry = unsafe { *list.add(i) };
        if entry.is_null() {
            return out;
        }
        // SAFETY: non-null entries are valid address/authdata structures.
        let entry = unsafe { &*entry };
        out.push(TaggedData {
            // The file format stores these tags as 16 bits.
            tag: entry.tag as u16,
            // SAFETY: `contents` is valid for `length` bytes.
            data: unsafe { bytes(entry.contents, entry.length) },
        });
        i += 1;
    }
}

/// # Safety: `raw` must be credentials filled in by libkrb5.
pub(crate) unsafe fn credential_from_raw(raw: &ffi::krb5_creds) -> Credential {
    // SAFETY: forwarded from the caller; every pointer in a filled
    // krb5_creds is valid or null with a zero length.
    unsafe {
        Credential {
            client: principal_from_raw(raw.client),
            server: principal_from_raw(raw.server),
            keyblock: Keyblock {
                enctype: raw.keyblock.enctype as u16,
                data: bytes(raw.keyblock.contents, raw.keyblock.length),
            },
            authtime: raw.times.authtime as u32,
            starttime: raw.times.starttime as u32,
            endtime: raw.times.endtime as u32,
            renew_till: raw.times.renew_till as u32,
            is_skey: raw.is_skey != 0,
            ticket_flags: raw.ticket_flags as u32,
            addresses: tagged_list(raw.addresses),
            authdata: tagged_list(raw.authdata),
            ticket: data_bytes(&raw.ticket),
            second_ticket: data_bytes(&raw.second_ticket),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keytab;

    /// The context-free fast path of `parse_principal` agrees with
    /// `krb5_parse_name` on every name it accepts, and declines the rest.
    #[test]
    fn principal_fast_path_agrees_with_libkrb5() {
        let ctx = Context::new().unwrap();
        let by_libkrb5 = |name: &str| {
            // SAFETY: a valid principal from krb5_parse_name.
            OwnedPrincipal::parse(&ctx, name).map(|p| unsafe { principal_from_raw(p.raw) })
        };
        for name in [
            "alice@EXAMPLE.ORG",
            "alice/admin@EXAMPLE.ORG",
            "host/node1.example.org@EXAMPLE.ORG",
            "a\\/b@EXAMPLE.ORG",
            "a\\@b@EXAMPLE.ORG",
            "a\\\\b@EXAMPLE.ORG",
            "tab\\tnl\\nbs\\bnul\\0x\\q@R",
            "alice@REALM\\@X",
            "élise@EXAMPLE.ORG",
        ] {
            let fast = Principal::parse_with_realm(name).unwrap_or_else(|| panic!("{name}"));
            let slow = by_libkrb5(name).unwrap();
            assert!(fast.same_as(&slow), "{name}: {fast:?} != {slow:?}");
            assert_eq!(fast.to_string_lossy(), slow.to_string_lossy());
        }
        for name in [
            "",
            "alice",
            "alice@",
            "@EXAMPLE.ORG",
            "a//b@R",
            "a/@R",
            "alice@R/x",
            "alice@R@S",
            "alice@R\\",
            "alice\\",
        ] {
            assert_eq!(Principal::parse_with_realm(name), None, "{name}");
        }
        assert!(!Principal::parse_with_realm("alice@A")
            .unwrap()
            .same_as(&Principal::parse_with_realm("alice@B").unwrap()));
        assert!(!Principal::parse_with_realm("alice/x@A")
            .unwrap()
            .same_as(&Principal::parse_with_realm("alice@A").unwrap()));
    }

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/keytab");

    fn request(
        principal: &str,
        lifetime: Option<u32>,
        renew_lifetime: Option<u32>,
    ) -> TicketRequest<'_> {
        TicketRequest {
            principal,
            lifetime,
            renew_lifetime,
            enterprise: false,
        }
    }

    fn multi() -> Keytab {
        let path = std::path::Path::new(FIXTURES).join("multi.keytab");
        keytab::parse(&std::fs::read(path).unwrap()).unwrap()
    }

    /// (principal, kvno, enctype, key) of every entry, read back through
    /// libkrb5's own iteration.
    fn list(ctx: &Context, kt: ffi::krb5_keytab) -> Vec<(String, u32, i32, Vec<u8>)> {
        let mut out = Vec::new();
        let mut cursor: ffi::krb5_kt_cursor = ptr::null_mut();
        // SAFETY: live context and keytab, valid out-pointer.
        let code = unsafe { ffi::krb5_kt_start_seq_get(ctx.0, kt, &mut cursor) };
        ctx.check(code, "start").unwrap();
        loop {
            // SAFETY: all-zero is the documented initial state of an entry.
            let mut entry: ffi::krb5_keytab_entry = unsafe { std::mem::zeroed() };
            // SAFETY: live context, keytab and cursor; `entry` is writable.
            let code = unsafe { ffi::krb5_kt_next_entry(ctx.0, kt, &mut entry, &mut cursor) };
            if code != 0 {
                break; // KRB5_KT_END
            }
            // SAFETY: libkrb5 filled the entry; it is freed right after the copy.
            unsafe {
                out.push((
                    principal_from_raw(entry.principal).to_string_lossy(),
                    entry.vno,
                    entry.key.enctype,
                    bytes(entry.key.contents, entry.key.length),
                ));
                ffi::krb5_free_keytab_entry_contents(ctx.0, &mut entry);
            }
        }
        // SAFETY: the cursor came from krb5_kt_start_seq_get on this keytab.
        unsafe { ffi::krb5_kt_end_seq_get(ctx.0, kt, &mut cursor) };
        out
    }

    #[test]
    fn memory_keytab_holds_copies_and_is_destroyed_on_drop() {
        let keytab = multi();
        let ctx = Context::new().unwrap();
        let alice = OwnedPrincipal::parse(&ctx, "alice@FIXTURE.TEST").unwrap();
        // SAFETY: a principal from krb5_parse_name.
        let wanted = unsafe { principal_from_raw(alice.raw) };
        let memory = MemoryKeytab::new(&ctx).unwrap();
        assert!(memory.name.starts_with("MEMORY:pamkrb-"));
        for entry in keytab.entries_for(&wanted) {
            memory.add(&alice, entry).unwrap();
        }
        let mut listed = list(&ctx, memory.raw);
        listed.sort_by_key(|e| e.2);
        let expected: Vec<_> = {
            let mut v: Vec<_> = keytab
                .entries_for(&wanted)
                .map(|e| {
                    (
                        "alice@FIXTURE.TEST".to_owned(),
                        e.kvno,
                        e.enctype,
                        e.key.as_bytes().to_vec(),
                    )
                })
                .collect();
            v.sort_by_key(|e| e.2);
            v
        };
        assert_eq!(listed.len(), 2);
        assert_eq!(listed, expected);

        // Closing the only reference destroys it: resolving the same name
        // afterwards creates a new, empty keytab.
        let name = memory.name.clone();
        drop(memory);
        let c_name = CString::new(name).unwrap();
        let mut raw: ffi::krb5_keytab = ptr::null_mut();
        // SAFETY: valid context, NUL-terminated name and out-pointer.
        let code = unsafe { ffi::krb5_kt_resolve(ctx.0, c_name.as_ptr(), &mut raw) };
        ctx.check(code, "resolve").unwrap();
        assert!(list(&ctx, raw).is_empty());
        // SAFETY: resolved above, closed once.
        unsafe { ffi::krb5_kt_close(ctx.0, raw) };
    }

    #[test]
    fn a_keytab_without_the_principal_fails_before_any_kdc() {
        let keytab = multi();
        let err =
            kinit_keytab(&request("carol@FIXTURE.TEST", None, None), &keytab, "/k").unwrap_err();
        match err {
            KerberosError::NoKey { principal } => assert_eq!(principal, "carol@FIXTURE.TEST"),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn secret(bytes: &[u8]) -> SecretBytes {
        SecretBytes::new(bytes.to_vec())
    }

    #[test]
    fn the_c_password_is_a_terminated_copy() {
        let copy = c_password(&secret(b"hunter2")).unwrap();
        assert_eq!(copy.as_bytes(), b"hunter2\0");
        let longest = vec![b'x'; MAX_PASSWORD_BYTES];
        assert_eq!(
            c_password(&secret(&longest)).unwrap().as_bytes().len(),
            MAX_PASSWORD_BYTES + 1
        );
    }

    #[test]
    fn bad_passwords_are_refused_before_libkrb5() {
        // No KDC serves FIXTURE.TEST: anything that reached libkrb5 would
        // come back as a Library error from the KDC lookup instead.
        let too_long = vec![b'x'; MAX_PASSWORD_BYTES + 1];
        for (password, why) in [
            (&b""[..], "invalid argument: empty password"),
            (
                b"hunter\x002",
                "invalid argument: password contains a NUL byte",
            ),
            (
                &too_long,
                "invalid argument: password longer than 8192 bytes",
            ),
        ] {
            let err = kinit_password(
                &request("alice@FIXTURE.TEST", None, None),
                &secret(password),
                None,
            )
            .unwrap_err();
            assert!(matches!(err, KerberosError::InvalidArgument(_)), "{err:?}");
            assert_eq!(err.to_string(), why);
            assert_eq!(err.code(), None);
        }
        // The longest password allowed does reach libkrb5.
        let longest = vec![b'x'; MAX_PASSWORD_BYTES];
        let err = kinit_password(
            &request("alice@FIXTURE.TEST", None, None),
            &secret(&longest),
            None,
        )
        .unwrap_err();
        assert!(matches!(err, KerberosError::Library { .. }), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("getting a ticket for alice@FIXTURE.TEST with a password: "),
            "{err}"
        );
    }

    #[test]
    fn every_copy_of_the_password_is_wiped_before_it_is_freed() {
        use crate::secret::leak_check::{freed_with_marker, MARKER};
        let before = freed_with_marker();
        // Through libkrb5 (which fails at the KDC lookup) and back: our
        // NUL-terminated copy and the caller's buffer are wiped when freed.
        let password = SecretBytes::new(MARKER.to_vec());
        let err = kinit_password(
            &request("alice@FIXTURE.TEST", Some(60), Some(120)),
            &password,
            None,
        )
        .unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("leak-check"), "{shown}");
        drop(password);
        // Refused before libkrb5: the copy is never made, the caller's wiped.
        // (Sized up front: pushing onto `MARKER.to_vec()` would reallocate
        // and free an unwiped copy, which this test caught once.)
        let mut with_nul = Vec::with_capacity(MARKER.len() + 1);
        with_nul.extend_from_slice(MARKER);
        with_nul.push(0);
        let with_nul = SecretBytes::new(with_nul);
        assert!(
            kinit_password(&request("alice@FIXTURE.TEST", None, None), &with_nul, None).is_err()
        );
        drop(with_nul);
        assert_eq!(freed_with_marker(), before);

        // The check itself works: a plain Vec holding the marker is counted.
        drop(std::hint::black_box(MARKER.to_vec()));
        assert_eq!(freed_with_marker(), before + 1);
    }

    #[test]
    fn account_policy_refusals_get_their_own_variants() {
        let ctx = Context::new().unwrap();
        let expired = ctx
            .check_policy(KEY_EXPIRED_CODE, "alice@R", "getting a ticket")
            .unwrap_err();
        assert!(
            matches!(&expired, KerberosError::PasswordExpired { principal, .. } if principal == "alice@R"),
            "{expired:?}"
        );
        assert_eq!(expired.code(), Some(KEY_EXPIRED_CODE));
        assert!(expired
            .to_string()
            .starts_with("the password of alice@R has expired and must be changed"));
        let revoked = ctx
            .check_policy(CLIENT_REVOKED_CODE, "alice@R", "getting a ticket")
            .unwrap_err();
        assert!(
            matches!(revoked, KerberosError::AccountRevoked { .. }),
            "{revoked:?}"
        );
        assert!(revoked.to_string().contains("locked, disabled or expired"));
        assert!(revoked.to_string().contains("krb5 error -1765328366"));
        // Anything else stays a plain library error naming the action.
        let other = ctx
            .check_policy(-1_765_328_378, "alice@R", "getting a ticket")
            .unwrap_err();
        assert!(matches!(other, KerberosError::Library { .. }), "{other:?}");
        assert!(other.to_string().starts_with("getting a ticket: "));
        assert!(ctx.check_policy(0, "alice@R", "x").is_ok());
    }

    #[test]
    fn the_armor_principal_is_the_machine_account() {
        let keytab = multi();
        // No NAME$ entry in the fixture: the first entry's principal.
        assert_eq!(
            armor_principal(&keytab).map(Principal::to_string_lossy),
            Some(keytab.entries[0].principal.to_string_lossy())
        );
        let mut machine = keytab.entries[0].principal.clone();
        machine.components = vec![b"HOST$".to_vec()];
        let mut with_machine = multi();
        let mut entry = multi().entries.remove(0);
        entry.principal = machine.clone();
        with_machine.entries.push(entry);
        assert_eq!(
            armor_principal(&with_machine).map(Principal::to_string_lossy),
            Some(machine.to_string_lossy())
        );
        assert!(armor_principal(&Keytab {
            version: 2,
            entries: vec![]
        })
        .is_none());
    }

    #[test]
    fn permitted_enctypes_follow_krb5_conf() {
        let permitted = permitted_enctypes().unwrap();
        // aes256-cts-hmac-sha1-96 is in every default list since krb5 1.8.
        assert!(permitted.contains(&18), "{permitted:?}");
        assert!(!permitted.contains(&0));
    }

    #[test]
    fn enctype_names_come_from_libkrb5() {
        assert_eq!(enctype_name(18), "aes256-cts-hmac-sha1-96");
        assert_eq!(enctype_name(17), "aes128-cts-hmac-sha1-96");
        assert_eq!(enctype_name(20), "aes256-cts-hmac-sha384-192");
        assert_eq!(enctype_name(9999), "unknown enctype 9999");
    }
}
