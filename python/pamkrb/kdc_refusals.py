"""What to tell a user whose ticket the KDC refused by account policy.

An Active Directory KDC refuses a right password when it has expired (or
must be changed at next logon) and refuses every ticket of a locked,
disabled or expired account. The native core raises
:class:`~pamkrb.exceptions.PasswordExpired` and
:class:`~pamkrb.exceptions.AccountRevoked` for these; the login form, the
sign-in dialog and the status show the same words, from here.
"""

from __future__ import annotations

from .exceptions import AccountRevoked, PasswordExpired

PASSWORD_EXPIRED = (
    "Your password has expired and must be changed before you can get a Kerberos ticket. "
    "Change it (for example on a Windows or domain-joined machine), then sign in with the new one."
)

ACCOUNT_REVOKED = (
    "The Kerberos server refuses tickets for your account: it is locked, disabled or expired "
    "(the server does not say which). Please contact your administrator."
)


def user_message(error: BaseException) -> str | None:
    """The message for the user when ``error`` is an account-policy refusal; else None."""
    if isinstance(error, PasswordExpired):
        return PASSWORD_EXPIRED
    if isinstance(error, AccountRevoked):
        return ACCOUNT_REVOKED
    return None
