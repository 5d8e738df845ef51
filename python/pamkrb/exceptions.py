"""Exceptions raised by pamkrb.

The native core raises these classes (they are imported into Rust), so they
can be caught and tested from Python like any other exception.
"""

from __future__ import annotations


class PamkrbError(Exception):
    """Base class of every pamkrb error."""


class AuthenticationDenied(PamkrbError):
    """PAM refused the user: wrong password, unknown user, expired account.

    This is the user's failure, not the system's; the authenticator turns it
    into a failed login, not an error. ``code`` is PAM's return code (for
    example 12, PAM_NEW_AUTHTOK_REQD: the password must be changed), or None
    when the login was refused before PAM.
    """

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class PAMSystemError(PamkrbError):
    """The PAM stack itself failed (missing service file or module, unreadable
    shadow file): something the administrator must fix."""


class KerberosError(PamkrbError):
    """libkrb5 could not obtain a ticket (KDC unreachable, principal not in
    the keytab, clock skew, ...), or the KDC answered after the caller's
    deadline and nothing was installed. ``code`` is the krb5 error code, if
    any (None for the deadline)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class KerberosPasswordRejected(KerberosError):
    """The KDC did not accept the password given for a principal
    (KDC_ERR_PREAUTH_FAILED, or a reply the password could not decrypt:
    KRB5KRB_AP_ERR_BAD_INTEGRITY). This is the user's failure, a wrong
    password, not the system's; nothing was installed. The message names the
    principal, never the password. ``code`` is the krb5 error code.

    An unknown principal or an unreachable KDC are plain KerberosError; an
    expired password is PasswordExpired, a locked account AccountRevoked."""


class PasswordExpired(KerberosError):
    """The KDC refused a ticket because the password has expired and must be
    changed (KDC_ERR_KEY_EXPIRED, -1765328361): its maximum age has passed,
    or an administrator set "must change at next logon". The password was
    right; only changing it helps, which pamkrb does not do. The message says
    so and names the principal; ``code`` is the krb5 error code."""


class AccountRevoked(KerberosError):
    """The KDC refused tickets for the principal (KDC_ERR_CLIENT_REVOKED,
    -1765328366): the account is locked out, disabled, or expired. An Active
    Directory KDC gives the same error for all three, so the message cannot
    say which; an administrator can. ``code`` is the krb5 error code."""


class TicketNotRenewable(KerberosError):
    """The ticket in the cache cannot be renewed: it was not issued
    renewable, it has already expired, or its renewal window (renew_until)
    is over. Only a new initial ticket (from a keytab or a password) helps;
    nothing was installed and no KDC was asked. ``code`` is None."""


class LoginRequired(KerberosError):
    """A password user's ticket can no longer be renewed (its renewable life
    is over) and there is no keytab: only signing in again gives a new one."""


class KeytabError(PamkrbError):
    """The keytab cannot be used: missing, empty, larger than 1 MiB, not a
    single regular file, reached through a symbolic link in any component of
    its path, not in keytab format, or holding no key for the principal."""


class CredentialCacheError(PamkrbError):
    """The credential cache could not be read or written safely.

    Reading: the file is not the user's own cache (a symlink, hard link, fifo
    or directory, owned by another uid, or with group/other permission bits)
    or could not be read. Writing: a directory on the way is unsafe (a
    symlink, owned by someone else, writable by others without the sticky
    bit), or an I/O error. Nothing was written. Entries planted at the cache
    path itself do not cause this on writing: they are replaced."""


class TicketFormatError(PamkrbError):
    """A credential cache is not in a format pamkrb understands, holds no
    ticket-granting ticket, or holds tickets of another principal than the
    one expected; or a cache offered for installation has expired."""


class TicketDeliveryError(PamkrbError):
    """The user's server could not get its ticket from the hub's ticket
    broker: the hub is unreachable, or it refused (``status`` is the HTTP
    status then: 403 not allowed, 404 no ticket, 429 too many requests)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NativePanic(PamkrbError):
    """pamkrb's native code hit a bug (a Rust panic). pyo3 raises panics as
    ``PanicException``, a ``BaseException`` that ``except Exception`` misses:
    one would silently end a user's renewals or take down the event loop.
    The attempt runner turns it into this ordinary error, which is logged
    and retried like any other failure."""


class InvalidUsername(PamkrbError, ValueError):
    """A username that is not safe to pass to PAM or to put into a path."""


class TemplateError(PamkrbError, ValueError):
    """A principal, keytab or cache template is invalid."""


__all__ = [
    "AccountRevoked",
    "AuthenticationDenied",
    "CredentialCacheError",
    "InvalidUsername",
    "KerberosError",
    "KerberosPasswordRejected",
    "KeytabError",
    "LoginRequired",
    "NativePanic",
    "PAMSystemError",
    "PamkrbError",
    "PasswordExpired",
    "TemplateError",
    "TicketDeliveryError",
    "TicketFormatError",
    "TicketNotRenewable",
]
