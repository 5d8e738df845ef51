//! pamkrb's native core. The modules below know nothing of Python; the
//! `python` module (feature `python`) is the only bindings layer.

pub mod cache_file;
pub mod ccache;
pub mod deadline;
pub mod fallback;
pub mod gssapi;
pub mod keytab;
pub mod kinit;
mod krb5_ffi;
pub mod pam;
pub mod private_dir;
pub mod safe_path;
pub mod secret;
pub mod template;
pub mod ticket;

#[cfg(feature = "python")]
mod python;
