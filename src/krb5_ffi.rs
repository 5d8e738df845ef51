//! The few MIT libkrb5 declarations pamkrb needs, written by hand from
//! `<krb5/krb5.h>` (krb5 1.20) so that every foreign call is visible and
//! audited. Struct layouts are part of libkrb5's stable public ABI.

#![allow(non_camel_case_types)]

use libc::{c_char, c_int, c_uint, c_void, size_t};

pub type krb5_error_code = i32;
pub type krb5_magic = i32;
pub type krb5_timestamp = i32;
pub type krb5_deltat = i32;
pub type krb5_boolean = c_uint;
pub type krb5_kvno = c_uint;
pub type krb5_enctype = i32;
#[cfg(test)] // only the tests read a keytab back
pub type krb5_kt_cursor = *mut c_void;

#[repr(C)]
pub struct krb5_data {
    pub magic: krb5_magic,
    pub length: c_uint,
    pub data: *mut c_char,
}

#[repr(C)]
pub struct krb5_principal_data {
    pub magic: krb5_magic,
    pub realm: krb5_data,
    pub data: *mut krb5_data,
    pub length: i32,
    pub type_: i32,
}

pub type krb5_principal = *mut krb5_principal_data;

#[repr(C)]
pub struct krb5_keyblock {
    pub magic: krb5_magic,
    pub enctype: i32,
    pub length: c_uint,
    pub contents: *mut u8,
}

#[repr(C)]
pub struct krb5_keytab_entry {
    pub magic: krb5_magic,
    pub principal: krb5_principal,
    pub timestamp: krb5_timestamp,
    pub vno: krb5_kvno,
    pub key: krb5_keyblock,
}

#[repr(C)]
pub struct krb5_ticket_times {
    pub authtime: krb5_timestamp,
    pub starttime: krb5_timestamp,
    pub endtime: krb5_timestamp,
    pub renew_till: krb5_timestamp,
}

/// Shared layout of `krb5_address` and `krb5_authdata`: a magic, a type tag
/// and a counted byte string.
#[repr(C)]
pub struct krb5_tagged_octets {
    pub magic: krb5_magic,
    pub tag: i32,
    pub length: c_uint,
    pub contents: *mut u8,
}

#[repr(C)]
pub struct krb5_creds {
    pub magic: krb5_magic,
    pub client: krb5_principal,
    pub server: krb5_principal,
    pub keyblock: krb5_keyblock,
    pub times: krb5_ticket_times,
    pub is_skey: krb5_boolean,
    pub ticket_flags: i32,
    pub addresses: *mut *mut krb5_tagged_octets,
    pub ticket: krb5_data,
    pub second_ticket: krb5_data,
    pub authdata: *mut *mut krb5_tagged_octets,
}

#[repr(C)]
pub struct _krb5_context {
    _private: [u8; 0],
}
pub type krb5_context = *mut _krb5_context;

#[repr(C)]
pub struct _krb5_kt {
    _private: [u8; 0],
}
pub type krb5_keytab = *mut _krb5_kt;

#[repr(C)]
pub struct _krb5_ccache {
    _private: [u8; 0],
}
pub type krb5_ccache = *mut _krb5_ccache;

#[repr(C)]
pub struct krb5_get_init_creds_opt {
    _private: [u8; 0],
}

/// Only ever passed as a null prompter: pamkrb never lets libkrb5 ask for
/// anything, so the prompt structure stays opaque.
#[repr(C)]
pub struct krb5_prompt {
    _private: [u8; 0],
}

/// `krb5_expire_callback_func`: the password and account expiry times a
/// successful AS exchange reported (0: not reported).
pub type krb5_expire_callback_func = Option<
    unsafe extern "C" fn(
        context: krb5_context,
        data: *mut c_void,
        password_expiration: krb5_timestamp,
        account_expiration: krb5_timestamp,
        is_last_req: krb5_boolean,
    ),
>;

/// `krb5_parse_name_flags`: a single-component enterprise name (a UPN).
pub const KRB5_PRINCIPAL_PARSE_ENTERPRISE: c_int = 0x4;
/// `krb5_get_init_creds_opt_set_fast_flags`: fail unless the KDC does FAST.
pub const KRB5_FAST_REQUIRED: krb5_flags = 0x0001;
pub type krb5_flags = i32;

pub type krb5_prompter_fct = Option<
    unsafe extern "C" fn(
        context: krb5_context,
        data: *mut c_void,
        name: *const c_char,
        banner: *const c_char,
        num_prompts: c_int,
        prompts: *mut krb5_prompt,
    ) -> krb5_error_code,
>;

#[link(name = "krb5")]
extern "C" {
    pub fn krb5_init_context(context: *mut krb5_context) -> krb5_error_code;
    pub fn krb5_free_context(context: krb5_context);
    pub fn krb5_get_error_message(context: krb5_context, code: krb5_error_code) -> *const c_char;
    pub fn krb5_free_error_message(context: krb5_context, msg: *const c_char);
    pub fn krb5_get_default_realm(
        context: krb5_context,
        lrealm: *mut *mut c_char,
    ) -> krb5_error_code;
    pub fn krb5_free_default_realm(context: krb5_context, lrealm: *mut c_char);
    pub fn krb5_parse_name(
        context: krb5_context,
        name: *const c_char,
        principal_out: *mut krb5_principal,
    ) -> krb5_error_code;
    pub fn krb5_parse_name_flags(
        context: krb5_context,
        name: *const c_char,
        flags: c_int,
        principal_out: *mut krb5_principal,
    ) -> krb5_error_code;
    pub fn krb5_free_principal(context: krb5_context, val: krb5_principal);
    pub fn krb5_kt_resolve(
        context: krb5_context,
        name: *const c_char,
        ktid: *mut krb5_keytab,
    ) -> krb5_error_code;
    pub fn krb5_kt_close(context: krb5_context, keytab: krb5_keytab) -> krb5_error_code;
    pub fn krb5_kt_add_entry(
        context: krb5_context,
        id: krb5_keytab,
        entry: *mut krb5_keytab_entry,
    ) -> krb5_error_code;
    #[cfg(test)]
    pub fn krb5_kt_start_seq_get(
        context: krb5_context,
        keytab: krb5_keytab,
        cursor: *mut krb5_kt_cursor,
    ) -> krb5_error_code;
    #[cfg(test)]
    pub fn krb5_kt_next_entry(
        context: krb5_context,
        keytab: krb5_keytab,
        entry: *mut krb5_keytab_entry,
        cursor: *mut krb5_kt_cursor,
    ) -> krb5_error_code;
    #[cfg(test)]
    pub fn krb5_kt_end_seq_get(
        context: krb5_context,
        keytab: krb5_keytab,
        cursor: *mut krb5_kt_cursor,
    ) -> krb5_error_code;
    #[cfg(test)]
    pub fn krb5_free_keytab_entry_contents(
        context: krb5_context,
        entry: *mut krb5_keytab_entry,
    ) -> krb5_error_code;
    pub fn krb5_get_init_creds_opt_alloc(
        context: krb5_context,
        opt: *mut *mut krb5_get_init_creds_opt,
    ) -> krb5_error_code;
    pub fn krb5_get_init_creds_opt_free(context: krb5_context, opt: *mut krb5_get_init_creds_opt);
    pub fn krb5_get_init_creds_opt_set_tkt_life(
        opt: *mut krb5_get_init_creds_opt,
        tkt_life: krb5_deltat,
    );
    pub fn krb5_get_init_creds_opt_set_renew_life(
        opt: *mut krb5_get_init_creds_opt,
        renew_life: krb5_deltat,
    );
    pub fn krb5_get_init_creds_opt_set_canonicalize(
        opt: *mut krb5_get_init_creds_opt,
        canonicalize: c_int,
    );
    pub fn krb5_get_init_creds_opt_set_expire_callback(
        context: krb5_context,
        opt: *mut krb5_get_init_creds_opt,
        cb: krb5_expire_callback_func,
        data: *mut c_void,
    ) -> krb5_error_code;
    pub fn krb5_get_init_creds_opt_set_fast_ccache(
        context: krb5_context,
        opt: *mut krb5_get_init_creds_opt,
        ccache: krb5_ccache,
    ) -> krb5_error_code;
    pub fn krb5_get_init_creds_opt_set_fast_flags(
        context: krb5_context,
        opt: *mut krb5_get_init_creds_opt,
        flags: krb5_flags,
    ) -> krb5_error_code;
    pub fn krb5_get_permitted_enctypes(
        context: krb5_context,
        ktypes: *mut *mut krb5_enctype,
    ) -> krb5_error_code;
    pub fn krb5_free_enctypes(context: krb5_context, val: *mut krb5_enctype);
    pub fn krb5_get_init_creds_keytab(
        context: krb5_context,
        creds: *mut krb5_creds,
        client: krb5_principal,
        arg_keytab: krb5_keytab,
        start_time: krb5_deltat,
        in_tkt_service: *const c_char,
        k5_gic_options: *mut krb5_get_init_creds_opt,
    ) -> krb5_error_code;
    pub fn krb5_get_init_creds_password(
        context: krb5_context,
        creds: *mut krb5_creds,
        client: krb5_principal,
        password: *const c_char,
        prompter: krb5_prompter_fct,
        data: *mut c_void,
        start_time: krb5_deltat,
        in_tkt_service: *const c_char,
        k5_gic_options: *mut krb5_get_init_creds_opt,
    ) -> krb5_error_code;
    pub fn krb5_free_cred_contents(context: krb5_context, val: *mut krb5_creds);
    pub fn krb5_cc_new_unique(
        context: krb5_context,
        type_: *const c_char,
        hint: *const c_char,
        id: *mut krb5_ccache,
    ) -> krb5_error_code;
    pub fn krb5_cc_initialize(
        context: krb5_context,
        cache: krb5_ccache,
        principal: krb5_principal,
    ) -> krb5_error_code;
    pub fn krb5_cc_store_cred(
        context: krb5_context,
        cache: krb5_ccache,
        creds: *mut krb5_creds,
    ) -> krb5_error_code;
    pub fn krb5_cc_destroy(context: krb5_context, cache: krb5_ccache) -> krb5_error_code;
    pub fn krb5_get_renewed_creds(
        context: krb5_context,
        creds: *mut krb5_creds,
        client: krb5_principal,
        ccache: krb5_ccache,
        in_tkt_service: *const c_char,
    ) -> krb5_error_code;
    pub fn krb5_get_time_offsets(
        context: krb5_context,
        seconds: *mut krb5_timestamp,
        microseconds: *mut i32,
    ) -> krb5_error_code;
}

// The enctype table lives in libkrb5's crypto library, not libkrb5 itself.
#[link(name = "k5crypto")]
extern "C" {
    pub fn krb5_enctype_to_name(
        enctype: krb5_enctype,
        shortest: krb5_boolean,
        buffer: *mut c_char,
        buflen: size_t,
    ) -> krb5_error_code;
}
