from typing import Final

MAX_USERNAME_LEN: Final[int]
"""Longest user name ``check_username`` accepts, in bytes."""
MAX_PASSWORD_BYTES: Final[int]
"""Longest password (UTF-8 bytes) the hub's login accepts and libkrb5 is
given: 8 KiB. Longer is refused without asking PAM or the KDC."""
MAX_SIGN_IN_BYTES: Final[int]
"""Largest sign-in request body (JSON ``{"password": ...}``) the hub and the
server read: 64 KiB, room for the longest password fully ``\\u``-escaped."""
MAX_CACHE_BYTES: Final[int]
"""Largest credential cache read, served or installed: 1 MiB."""

class TicketInfo:
    @property
    def principal(self) -> str: ...
    @property
    def starts_at(self) -> int: ...
    @property
    def expires_at(self) -> int: ...
    @property
    def renew_until(self) -> int | None: ...
    @property
    def renewable(self) -> bool:
        """The KDC issued the ticket renewable (flag R)."""
    def is_for(self, principal: str) -> bool:
        """Whether the ticket is ``principal``'s: realm and name components
        compared as ``krb5_principal_compare`` does (escapes resolved, the
        name type ignored), not the strings. A name without a realm gets the
        default realm. KerberosError if ``principal`` is not a principal name."""
    def can_renew(self, now: float, margin: float = 0.0) -> bool:
        """Whether the KDC would renew the ticket at ``now`` (``time.time()``)
        with more than ``margin`` seconds of renewable life left: issued
        renewable (flag R, not just a ``renew_until``), still valid, renewal
        window open. The rule renew_ticket applies before asking the KDC.
        ValueError for a negative or non-finite ``now``."""

class ReplacedEntry:
    """Something other than the user's own cache that obtain_ticket replaced."""

    @property
    def kind(self) -> str:
        """What was replaced: 'symbolic link', 'hard link', 'directory', 'fifo',
        'socket', 'file owned by another user', 'file with mode 0644', ..."""
    @property
    def owner_uid(self) -> int:
        """The uid that owned the replaced entry itself."""
    @property
    def moved_to(self) -> str | None:
        """Where a planted directory was renamed to (same directory); None otherwise."""

class Installation:
    """What obtain_ticket, renew_ticket or install_cache installed, where, and
    what it replaced there."""

    @property
    def ticket(self) -> TicketInfo: ...
    @property
    def ccache(self) -> str:
        """The path actually written: the ``ccache`` asked for, or the
        ``fallback`` when that could not be written."""
    @property
    def replaced(self) -> ReplacedEntry | None:
        """What was replaced at ``ccache`` (the path actually written); None
        when that was the user's own cache or nothing."""
    @property
    def fallback_reason(self) -> str | None:
        """Why the ``ccache`` asked for was not written (the error there) when
        the fallback was; None when the ``ccache`` asked for was written."""
    @property
    def password_expires_at(self) -> int | None:
        """When the user's password expires (seconds since the epoch), as the
        KDC reported it with a password ticket (an Active Directory KDC does
        on every login); None otherwise."""

class KeytabEntry:
    @property
    def principal(self) -> str: ...
    @property
    def kvno(self) -> int: ...
    @property
    def enctype(self) -> int: ...
    @property
    def enctype_name(self) -> str: ...
    @property
    def timestamp(self) -> int: ...
    def is_for(self, principal: str) -> bool:
        """Whether this key is ``principal``'s, compared as ``TicketInfo.is_for``."""

class KeytabInfo:
    @property
    def owner_uid(self) -> int: ...
    @property
    def owner_gid(self) -> int: ...
    @property
    def mode(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def entries(self) -> tuple[KeytabEntry, ...]: ...
    def has_key_for(self, principal: str) -> bool:
        """Whether the keytab holds at least one key of ``principal`` (compared
        as ``TicketInfo.is_for``): what ``obtain_ticket`` needs before it asks
        the KDC. KerberosError if ``principal`` is not a principal name."""

def pam_authenticate(
    service: str,
    username: str,
    password: bytearray,
    *,
    otp: bytearray | None = None,
    remote_host: str | None = None,
    check_account: bool = True,
) -> str:
    """Authenticate ``username`` with ``password`` against PAM ``service``
    and, if ``check_account``, run the account stack, in one transaction; a
    second hidden prompt is answered with ``otp``. The bytearrays are zeroed
    before this returns or raises.

    Returns the user name PAM holds in PAM_USER afterwards: a module may map
    the name given to another, and that is whom PAM let in. When PAM_USER is
    unset, empty or not UTF-8, ``username`` is returned. AuthenticationDenied
    when the user may not log in (wrong password, unknown or expired
    account; its ``code`` is PAM's return code), PAMSystemError when the PAM
    stack fails. ``username`` must pass ``check_username`` (InvalidUsername)."""

def obtain_ticket(
    principal: str,
    keytab: str,
    ccache: str,
    *,
    uid: int | None = None,
    gid: int | None = None,
    lifetime: int | None = None,
    renew_lifetime: int | None = None,
    deadline: float | None = None,
    fallback: str | None = None,
) -> Installation:
    """Get a ticket for ``principal`` from ``keytab`` and install it
    atomically at ``ccache``, owned by uid/gid (default: the caller), mode
    0600, replacing whatever else is there (reported as ``replaced``).

    ``deadline``: an absolute ``time.monotonic()`` value; once it has
    passed (checked before contacting the KDC and just before the rename),
    nothing is installed and KerberosError is raised.

    ``fallback``: where the ticket goes when writing ``ccache`` fails once its
    directory has been reached and found safe, at any step (another user's
    FUSE mount at the path, a directory there that keeps coming back, a full
    file system): what a local user can cause. Not for a path or a directory
    on the way that is wrong (a symlink, missing, writable by others without
    the sticky bit: the admin's to fix, raised as before), nor after
    ``deadline``. The same ticket is written there (one KDC request). Its directory (e.g.
    ``/run/pamkrb/<uid>`` for ``/run/pamkrb/<uid>/krb5cc``) is made the
    owner's, mode 0700, created if missing inside a directory of root's that
    nobody else can write (created 0755 when running as root); another user's
    directory there is refused. ``Installation.ccache`` is the path written
    and ``fallback_reason`` the error at ``ccache``. If the fallback fails too,
    CredentialCacheError names both failures."""

def obtain_ticket_with_password(
    principal: str,
    password: bytearray,
    ccache: str,
    *,
    uid: int | None = None,
    gid: int | None = None,
    lifetime: int | None = None,
    renew_lifetime: int | None = None,
    deadline: float | None = None,
    fallback: str | None = None,
    enterprise: bool = False,
    armor_keytab: str | None = None,
) -> Installation:
    """Get a ticket for ``principal`` with its Kerberos password (in-process,
    no prompter) and install it at ``ccache`` as obtain_ticket does (owned by
    uid/gid, mode 0600, atomically; ``deadline`` and ``fallback`` likewise). ``password`` is
    zeroed before this returns or raises. KerberosPasswordRejected when the
    KDC does not accept the password; PasswordExpired for an expired or
    must-change password; AccountRevoked for a locked, disabled or expired
    account; KerberosError otherwise (``code`` None for an empty password, a
    NUL byte or more than 8 KiB, refused without asking the KDC).
    Canonicalization is requested: the cache holds the KDC's name for the
    client (``Installation.ticket.principal``). ``enterprise``: send
    ``principal`` as an enterprise name (a UPN). ``armor_keytab``: armor the
    request (FAST) with that keytab's machine key; fails unless the KDC does
    FAST."""

def renew_ticket(
    principal: str,
    ccache: str,
    *,
    uid: int | None = None,
    gid: int | None = None,
    deadline: float | None = None,
    fallback: str | None = None,
) -> Installation:
    """Renew the TGT in ``ccache`` with a TGS request (``kinit -R``, no keytab)
    and atomically replace the cache, owned by uid/gid, mode 0600. The cache
    is read from ``ccache`` (pass the path in use, the fallback if that is
    where the ticket is) and must be ``uid``'s own (as for inspect_ticket)
    and hold a TGT of ``principal``. The renewed cache is written to
    ``ccache``, or to ``fallback`` as for obtain_ticket. TicketNotRenewable
    when the ticket is not renewable, has expired or is past renew_until
    (obtain a new initial ticket); KerberosError when the KDC refuses or after
    ``deadline``."""

def read_cache(ccache: str, *, uid: int | None = None) -> bytes:
    """The cache's bytes, read with inspect_ticket's checks and verified to be
    a FILE cache holding a TGT (TicketFormatError otherwise)."""

def install_cache(
    ccache: str,
    data: bytes,
    *,
    principal: str,
    uid: int | None = None,
    gid: int | None = None,
    deadline: float | None = None,
    fallback: str | None = None,
) -> Installation:
    """Install ``data`` (from read_cache) atomically at ``ccache``, owned by
    uid/gid, mode 0600, or at ``fallback`` as for obtain_ticket.
    TicketFormatError unless it parses, every entry is ``principal``'s and
    its TGT has not expired."""

def inspect_ticket(ccache: str, *, uid: int | None = None) -> TicketInfo:
    """Describe the TGT in the FILE cache at ``ccache``, read without a KDC.

    CredentialCacheError unless the cache is a regular file owned by ``uid``
    (default: the process's euid), without group/other bits. More than one
    hard link is accepted: the other names share the owner and the
    owner-only mode, so only the owner can change what it holds, and another
    user linking the cache (``fs.protected_hardlinks=0``) must not send the
    owner to sign in again. A symbolic link, fifo, directory or another
    user's file is refused. TicketFormatError if it does not parse."""

def destroy_cache(ccache: str, *, uid: int) -> bool:
    """Remove ``uid``'s credential cache at ``ccache`` (their server stopped).

    Only a regular file owned by ``uid`` is removed (any mode, any number of
    links; the name is unlinked, never a file a link points to): True. False
    when anything else is there, which is left alone: nothing, a symbolic
    link, a directory, another user's file, an entry root cannot look at
    (another user's FUSE mount), or no directory. CredentialCacheError when
    the way there is unsafe (a symlink on the way, a final directory owned by
    another user or writable by others without the sticky bit)."""

def inspect_keytab(path: str) -> KeytabInfo:
    """The keytab's owner, mode and entries (never its keys), read through
    the same walk as obtain_ticket; KeytabError if unsafe or malformed."""

def default_realm() -> str: ...
def permitted_enctypes() -> list[int]:
    """The enctype numbers this host's libkrb5 permits (``permitted_enctypes``
    of the krb5.conf KRB5_CONFIG names, or libkrb5's default), in order."""

def enctype_name(enctype: int) -> str:
    """libkrb5's name for an enctype number, e.g. "aes256-cts-hmac-sha1-96"."""

def validate_template(template: str) -> None: ...
def expand_template(
    template: str,
    *,
    username: str,
    uid: int,
    gid: int,
    home: str,
    realm: str,
    user: str | None = None,
    domain: str | None = None,
    path: bool = False,
) -> str: ...
def check_username(username: str) -> None: ...

# -- single sign-on (src/gssapi.rs) -------------------------------------------

def accept_negotiate(
    token: bytes,
    keytab: str,
    *,
    replay_cache: str | None = None,
    deadline: float | None = None,
) -> tuple[str, str, list[str], bytes, bytes | None]:
    """Accept one ``Authorization: Negotiate`` token with the service
    ``keytab`` (root's alone). ``(principal, realm, components,
    output_token, delegated)``: ``delegated`` is the delegated TGT as
    FILE-cache bytes for ``install_cache``, or None. AuthenticationDenied
    for a bad, replayed or foreign token; KeytabError or KerberosError for a
    fault of ours."""

def pam_check_account(service: str, username: str, *, remote_host: str | None = None) -> str:
    """PAM's account stack alone (no password), for a single sign-on; PAM_USER."""
