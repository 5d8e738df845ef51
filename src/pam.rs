//! PAM authentication and account check in one transaction.
//!
//! This uses the `pam` crate's raw bindings rather than its `Client`: the
//! `Client` sets environment variables process-wide in `open_session` and calls
//! `pam_setcred(PAM_DELETE_CRED)` on drop (deleting credentials other modules
//! established), and its conversation copies the password into memory nobody
//! wipes. Here the password is only ever held in buffers that are zeroed.

use std::ffi::{c_int, c_void, CStr, CString};
use std::ptr;

use pam::ffi;
use pam::PamReturnCode;

use crate::secret::SecretBytes;

/// Which step of the transaction failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Start,
    Authenticate,
    AccountCheck,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stage::Start => "start",
            Stage::Authenticate => "authentication",
            Stage::AccountCheck => "account check",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PamError {
    /// The user is not let in: wrong password, unknown user, expired or
    /// locked account. Their fault, not the system's.
    #[error("PAM {stage} denied: {message}")]
    Denied {
        stage: Stage,
        code: i32,
        message: String,
    },
    /// The PAM stack itself failed (missing module, unreadable shadow file,
    /// unknown service, …): the admin must fix something.
    #[error("PAM {stage} failed for service {service:?}: {message}")]
    System {
        service: String,
        stage: Stage,
        code: i32,
        message: String,
    },
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
}

/// What the hub knows about the login attempt.
pub struct LoginAttempt<'a> {
    pub service: &'a str,
    pub username: &'a str,
    pub password: SecretBytes,
    /// A one-time password for a second hidden prompt (JupyterHub's
    /// `request_otp`), answered in order after the password, as pamela does.
    pub otp: Option<SecretBytes>,
    /// The client's address, given to PAM as PAM_RHOST (for pam_faillock,
    /// access rules and audit logs).
    pub remote_host: Option<&'a str>,
    pub check_account: bool,
}

/// State the conversation function reads; passed through PAM's appdata.
struct Conversation<'a> {
    /// Answers to hidden prompts, in order: the password, then the OTP.
    secrets: Vec<&'a [u8]>,
    answered: std::cell::Cell<usize>,
    /// Set when PAM asked for more hidden answers than the user gave: the
    /// resulting PAM_CONV_ERR is the user's missing input, not a fault.
    ran_out: std::cell::Cell<bool>,
    username: &'a CStr,
}

/// Authenticates the user and, if asked, checks the account, in one PAM
/// transaction. Blocks (PAM modules may sleep or talk to the network): call
/// it without holding any lock the caller needs.
///
/// Returns the user name PAM holds in PAM_USER once both steps succeeded: a
/// module may map the name typed to another (pam_usermap, an LDAP module's
/// case folding), and that is whom PAM let in. When PAM_USER cannot be read,
/// is empty or is not UTF-8, the name given is returned.
pub fn authenticate(attempt: LoginAttempt<'_>) -> Result<String, PamError> {
    // An empty password is a denial, decided here: a PAM stack with
    // `nullok` (Debian's common-auth has it) lets an account with an empty
    // password field in without one. PAM_DISALLOW_NULL_AUTHTOK below says
    // the same to the modules, for stacks that reach them another way.
    if attempt.password.as_bytes().is_empty() {
        return Err(PamError::Denied {
            stage: Stage::Authenticate,
            code: ffi::PAM_AUTH_ERR as c_int,
            message: "empty password".into(),
        });
    }
    if attempt.password.as_bytes().contains(&0) {
        return Err(PamError::InvalidArgument("password contains a NUL byte"));
    }
    if attempt
        .otp
        .as_ref()
        .is_some_and(|otp| otp.as_bytes().contains(&0))
    {
        return Err(PamError::InvalidArgument(
            "one-time password contains a NUL byte",
        ));
    }
    let mut secrets = vec![attempt.password.as_bytes()];
    secrets.extend(attempt.otp.as_ref().map(SecretBytes::as_bytes));
    in_transaction(
        attempt.service,
        attempt.username,
        attempt.remote_host,
        secrets,
        "PAM asked for a secret that was not given (a one-time password?)",
        |transaction| {
            transaction
                .run(Stage::Authenticate, |h| {
                    // SAFETY: `h` is the live handle; the conversation
                    // `in_transaction` holds outlives the call.
                    unsafe { ffi::pam_authenticate(h, ffi::PAM_DISALLOW_NULL_AUTHTOK as c_int) }
                })
                .and_then(|()| {
                    if !attempt.check_account {
                        return Ok(());
                    }
                    transaction.run(Stage::AccountCheck, |h| {
                        // SAFETY: as above.
                        unsafe { ffi::pam_acct_mgmt(h, ffi::PAM_DISALLOW_NULL_AUTHTOK as c_int) }
                    })
                })
        },
    )
}

/// Runs only the account stack (`pam_acct_mgmt`) for `username`, who was
/// authenticated another way (a Kerberos ticket at single sign-on): an
/// expired or locked account, pam_access or pam_time rules still refuse
/// them. No password exists: a module that asks for one gets none, and the
/// user is denied. Returns PAM_USER as [`authenticate`] does.
pub fn check_account(
    service: &str,
    username: &str,
    remote_host: Option<&str>,
) -> Result<String, PamError> {
    in_transaction(
        service,
        username,
        remote_host,
        Vec::new(),
        "the account stack asked for a secret, and single sign-on has none",
        |transaction| {
            transaction.run(Stage::AccountCheck, |h| {
                // SAFETY: `h` is the live handle; the conversation
                // `in_transaction` holds outlives the call.
                unsafe { ffi::pam_acct_mgmt(h, ffi::PAM_DISALLOW_NULL_AUTHTOK as c_int) }
            })
        },
    )
}

/// One PAM transaction for `username` at `service` (PAM_RHOST set when
/// `remote_host` is given) whose conversation answers hidden prompts with
/// `secrets` in order; `stages` runs the PAM calls on it. A PAM_CONV_ERR
/// caused by asking for more secrets than given is the user's denial,
/// worded `no_secret_left`, not a system fault. Returns PAM_USER (see
/// [`name_or`]).
fn in_transaction(
    service: &str,
    username: &str,
    remote_host: Option<&str>,
    secrets: Vec<&[u8]>,
    no_secret_left: &str,
    stages: impl FnOnce(&Transaction<'_>) -> Result<(), PamError>,
) -> Result<String, PamError> {
    let service_c = CString::new(service)
        .map_err(|_| PamError::InvalidArgument("service contains a NUL byte"))?;
    let user_c = CString::new(username)
        .map_err(|_| PamError::InvalidArgument("username contains a NUL byte"))?;
    let remote_host = remote_host
        .map(CString::new)
        .transpose()
        .map_err(|_| PamError::InvalidArgument("remote host contains a NUL byte"))?;
    let mut conversation = Conversation {
        secrets,
        answered: std::cell::Cell::new(0),
        ran_out: std::cell::Cell::new(false),
        username: &user_c,
    };
    let conv = ffi::pam_conv {
        conv: Some(converse),
        appdata_ptr: (&mut conversation as *mut Conversation<'_>).cast(),
    };
    // Declared after `conversation` and `conv`: dropped (pam_end) before them.
    let transaction = Transaction::start(service, &service_c, &user_c, &conv)?;
    if let Some(host) = &remote_host {
        transaction.set_item(ffi::PAM_RHOST as c_int, host)?;
    }
    match stages(&transaction) {
        Err(PamError::System { stage, code, .. })
            if code == ffi::PAM_CONV_ERR && conversation.ran_out.get() =>
        {
            Err(PamError::Denied {
                stage,
                code,
                message: no_secret_left.into(),
            })
        }
        Err(other) => Err(other),
        Ok(()) => Ok(name_or(transaction.user(), username)),
    }
}

/// PAM_USER as read from the handle, or `given` when it is unusable.
fn name_or(pam_user: Option<&CStr>, given: &str) -> String {
    pam_user
        .and_then(|name| name.to_str().ok())
        .filter(|name| !name.is_empty())
        .unwrap_or(given)
        .to_owned()
}

/// An open PAM handle, ended in `Drop` with the last status.
struct Transaction<'a> {
    handle: *mut ffi::pam_handle_t,
    service: &'a str,
    last_status: std::cell::Cell<c_int>,
}

impl<'a> Transaction<'a> {
    fn start(
        service_name: &'a str,
        service: &CStr,
        username: &CStr,
        conv: &ffi::pam_conv,
    ) -> Result<Self, PamError> {
        let mut handle: *mut ffi::pam_handle_t = ptr::null_mut();
        // SAFETY: all pointers are valid NUL-terminated strings or live
        // structures; PAM copies the conversation struct and strings.
        let code =
            unsafe { ffi::pam_start(service.as_ptr(), username.as_ptr(), conv, &mut handle) };
        if code != ffi::PAM_SUCCESS || handle.is_null() {
            return Err(PamError::System {
                service: service_name.to_owned(),
                stage: Stage::Start,
                code,
                message: format!(
                    "pam_start failed ({}); is /etc/pam.d/{service_name} present?",
                    describe(ptr::null_mut(), code)
                ),
            });
        }
        Ok(Transaction {
            handle,
            service: service_name,
            last_status: std::cell::Cell::new(code),
        })
    }

    /// PAM_USER as the stack left it, borrowed from the handle: valid until
    /// the item is set again or the transaction ends, which `&self` rules
    /// out while the borrow lives. None when PAM has none.
    fn user(&self) -> Option<&CStr> {
        let mut item: *const c_void = ptr::null();
        // SAFETY: live handle and a valid out-pointer; PAM stores in it a
        // pointer to its own copy of the item and keeps ownership.
        let code = unsafe { ffi::pam_get_item(self.handle, ffi::PAM_USER as c_int, &mut item) };
        if code != ffi::PAM_SUCCESS || item.is_null() {
            return None;
        }
        // SAFETY: PAM_USER is a NUL-terminated string owned by the handle,
        // which outlives the returned borrow of `self`.
        Some(unsafe { CStr::from_ptr(item.cast()) })
    }

    fn set_item(&self, item: c_int, value: &CStr) -> Result<(), PamError> {
        // SAFETY: live handle; PAM copies string items.
        let code = unsafe { ffi::pam_set_item(self.handle, item, value.as_ptr().cast()) };
        self.last_status.set(code);
        if code == ffi::PAM_SUCCESS {
            return Ok(());
        }
        Err(self.error(Stage::Start, code))
    }

    fn run(
        &self,
        stage: Stage,
        call: impl FnOnce(*mut ffi::pam_handle_t) -> c_int,
    ) -> Result<(), PamError> {
        let code = call(self.handle);
        self.last_status.set(code);
        if code == ffi::PAM_SUCCESS {
            return Ok(());
        }
        Err(self.error(stage, code))
    }

    fn error(&self, stage: Stage, code: c_int) -> PamError {
        let message = describe(self.handle, code);
        if is_denial(code) {
            PamError::Denied {
                stage,
                code,
                message,
            }
        } else {
            PamError::System {
                service: self.service.to_owned(),
                stage,
                code,
                message,
            }
        }
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        // SAFETY: the handle came from pam_start and is ended exactly once.
        unsafe {
            ffi::pam_end(self.handle, self.last_status.get());
        }
    }
}

/// Return codes that mean "this user may not log in" rather than "PAM broke".
fn is_denial(code: c_int) -> bool {
    matches!(
        PamReturnCode::from(code),
        PamReturnCode::Auth_Err
            | PamReturnCode::User_Unknown
            | PamReturnCode::MaxTries
            | PamReturnCode::Cred_Insufficient
            | PamReturnCode::Acct_Expired
            | PamReturnCode::New_Authtok_Reqd
            | PamReturnCode::Perm_Denied
            | PamReturnCode::AuthTok_Expired
    )
}

fn describe(handle: *mut ffi::pam_handle_t, code: c_int) -> String {
    // SAFETY: pam_strerror accepts any handle (Linux-PAM ignores it) and
    // returns a static string or null.
    let raw = unsafe { ffi::pam_strerror(handle, code) };
    if raw.is_null() {
        return format!("PAM error {code}");
    }
    // SAFETY: non-null results are static NUL-terminated strings.
    unsafe { CStr::from_ptr(raw) }
        .to_string_lossy()
        .into_owned()
}

/// Copies `value` into a malloc'd NUL-terminated string, as PAM frees replies
/// with free(3).
fn malloc_copy(value: &[u8]) -> *mut libc::c_char {
    // SAFETY: allocating len + 1 bytes; null is checked by the caller.
    let raw = unsafe { libc::calloc(value.len() + 1, 1) } as *mut u8;
    if !raw.is_null() {
        // SAFETY: `raw` has room for value.len() bytes plus the zeroed NUL.
        unsafe { ptr::copy_nonoverlapping(value.as_ptr(), raw, value.len()) };
    }
    raw.cast()
}

/// Frees a reply array built by `converse`, wiping the strings first so a
/// password does not linger in freed memory.
///
/// # Safety
/// `replies` must be a calloc'd array of `count` pam_response entries.
unsafe fn free_replies(replies: *mut ffi::pam_response, count: usize) {
    for i in 0..count {
        // SAFETY: within the array the caller allocated.
        let reply = unsafe { &mut *replies.add(i) };
        if !reply.resp.is_null() {
            // SAFETY: every non-null resp is a NUL-terminated malloc'd string.
            unsafe {
                let len = libc::strlen(reply.resp);
                crate::secret::wipe(std::slice::from_raw_parts_mut(reply.resp.cast(), len));
                libc::free(reply.resp.cast());
            }
        }
    }
    // SAFETY: the array itself came from calloc.
    unsafe { libc::free(replies.cast()) };
}

/// PAM's conversation callback: answers hidden prompts with the password
/// and then the one-time password, a visible prompt (the login name) with
/// the username, and
/// accepts informational and error texts (pam_unix sends "password expired"
/// that way; failing the conversation on it would turn a denial into an
/// error).
///
/// A panic must not unwind out of an `extern "C"` function into libpam's C
/// frames: with our MSRV (1.80) that is undefined behaviour, not the abort
/// newer compilers insert. The body runs under `catch_unwind` and a panic
/// becomes PAM_CONV_ERR, which PAM reports as a failed conversation (a system
/// error for the admin). A reply array being built when the panic hit is
/// leaked rather than freed: after a panic its state is unknown.
unsafe extern "C" fn converse(
    num_msg: c_int,
    msg: *mut *const ffi::pam_message,
    resp: *mut *mut ffi::pam_response,
    appdata_ptr: *mut c_void,
) -> c_int {
    // AssertUnwindSafe: on a panic the only shared state, the Conversation's
    // counters, is not looked at again (the transaction fails).
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: forwarded unchanged from PAM, which calls us with valid
        // arguments as documented in pam_conv(3).
        unsafe { converse_inner(num_msg, msg, resp, appdata_ptr) }
    }))
    .unwrap_or(ffi::PAM_CONV_ERR)
}

/// The body of `converse`, see there.
///
/// # Safety
/// The arguments must be those PAM passes to a conversation function.
unsafe fn converse_inner(
    num_msg: c_int,
    msg: *mut *const ffi::pam_message,
    resp: *mut *mut ffi::pam_response,
    appdata_ptr: *mut c_void,
) -> c_int {
    let conv_err = ffi::PAM_CONV_ERR;
    let Ok(count) = usize::try_from(num_msg) else {
        return conv_err;
    };
    if count == 0 || count > ffi::PAM_MAX_NUM_MSG as usize || msg.is_null() || resp.is_null() {
        return conv_err;
    }
    // SAFETY: appdata is the Conversation passed to pam_start, alive for the
    // whole transaction.
    let state = unsafe { &*(appdata_ptr as *const Conversation<'_>) };
    // SAFETY: allocating a zeroed reply array; PAM frees it with free(3).
    let replies = unsafe { libc::calloc(count, std::mem::size_of::<ffi::pam_response>()) }
        as *mut ffi::pam_response;
    if replies.is_null() {
        return ffi::PAM_BUF_ERR;
    }
    for i in 0..count {
        // Linux-PAM passes an array of pointers to messages.
        // SAFETY: PAM guarantees `num_msg` valid message pointers.
        let message = unsafe { &**msg.add(i) };
        let answer = match message.msg_style {
            ffi::PAM_PROMPT_ECHO_OFF => {
                let next = state.answered.get();
                let Some(secret) = state.secrets.get(next) else {
                    // Like pamela: one hidden answer per secret given, so an
                    // OTP prompt is never answered with the password.
                    state.ran_out.set(true);
                    // SAFETY: `replies` holds `count` entries from calloc.
                    unsafe { free_replies(replies, count) };
                    return conv_err;
                };
                state.answered.set(next + 1);
                Some(*secret)
            }
            ffi::PAM_PROMPT_ECHO_ON => Some(state.username.to_bytes()),
            ffi::PAM_ERROR_MSG | ffi::PAM_TEXT_INFO => None,
            _ => {
                // SAFETY: `replies` holds `count` entries from calloc.
                unsafe { free_replies(replies, count) };
                return conv_err;
            }
        };
        if let Some(answer) = answer {
            let copy = malloc_copy(answer);
            if copy.is_null() {
                // SAFETY: as above.
                unsafe { free_replies(replies, count) };
                return ffi::PAM_BUF_ERR;
            }
            // SAFETY: `i < count`, within the array.
            unsafe { (*replies.add(i)).resp = copy };
        }
    }
    // SAFETY: `resp` is PAM's valid out-pointer.
    unsafe { *resp = replies };
    ffi::PAM_SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denial_codes_are_not_system_errors() {
        assert!(is_denial(ffi::PAM_AUTH_ERR as c_int));
        assert!(is_denial(ffi::PAM_USER_UNKNOWN as c_int));
        assert!(is_denial(ffi::PAM_ACCT_EXPIRED as c_int));
        assert!(!is_denial(ffi::PAM_SYSTEM_ERR as c_int));
        assert!(!is_denial(ffi::PAM_AUTHINFO_UNAVAIL as c_int));
        assert!(!is_denial(ffi::PAM_ABORT as c_int));
    }

    #[test]
    fn the_name_pam_holds_is_returned_unless_unusable() {
        assert_eq!(name_or(Some(c"Alice"), "alice"), "Alice");
        assert_eq!(name_or(None, "alice"), "alice");
        assert_eq!(name_or(Some(c""), "alice"), "alice");
        assert_eq!(name_or(Some(c"\xff\xfe"), "alice"), "alice");
    }

    #[test]
    fn nul_in_password_is_refused_before_pam() {
        let err = authenticate(LoginAttempt {
            service: "pamkrb-nonexistent",
            username: "nobody",
            password: SecretBytes::new(b"a\0b".to_vec()),
            otp: None,
            remote_host: None,
            check_account: true,
        })
        .unwrap_err();
        assert!(matches!(err, PamError::InvalidArgument(_)));
        assert!(!err.to_string().contains("a\0b"));
    }

    #[test]
    fn empty_password_is_denied_before_pam() {
        // The service does not exist: reaching PAM would be a System error.
        let err = authenticate(LoginAttempt {
            service: "pamkrb-nonexistent",
            username: "nobody",
            password: SecretBytes::new(Vec::new()),
            otp: None,
            remote_host: None,
            check_account: true,
        })
        .unwrap_err();
        match &err {
            PamError::Denied { stage, message, .. } => {
                assert_eq!(
                    (*stage, message.as_str()),
                    (Stage::Authenticate, "empty password")
                )
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(err.to_string(), "PAM authentication denied: empty password");
    }

    #[test]
    fn unknown_user_is_denied_not_a_system_error() {
        // pam_unix answers for a user missing from passwd with a denial; use
        // the "other" stack, present on every Debian system.
        let err = authenticate(LoginAttempt {
            service: "other",
            username: "pamkrb-no-such-user",
            password: SecretBytes::new(b"secret".to_vec()),
            otp: None,
            remote_host: Some("127.0.0.1"),
            check_account: true,
        })
        .unwrap_err();
        assert!(matches!(err, PamError::Denied { .. }), "{err:?}");
        assert!(!err.to_string().contains("secret"));
    }
}
