from typing import Final

MAX_USERNAME_LEN: Final[int]

class TicketInfo:
    @property
    def principal(self) -> str: ...
    @property
    def starts_at(self) -> int: ...
    @property
    def expires_at(self) -> int: ...
    @property
    def renew_until(self) -> int | None: ...

def pam_authenticate(
    service: str,
    username: str,
    password: bytearray,
    *,
    otp: bytearray | None = None,
    remote_host: str | None = None,
    check_account: bool = True,
) -> None: ...
def obtain_ticket(
    principal: str,
    keytab: str,
    ccache: str,
    *,
    uid: int | None = None,
    gid: int | None = None,
    lifetime: int | None = None,
    renew_lifetime: int | None = None,
) -> TicketInfo: ...
def inspect_ticket(ccache: str) -> TicketInfo: ...
def default_realm() -> str: ...
def validate_template(template: str) -> None: ...
def expand_template(
    template: str,
    *,
    username: str,
    uid: int,
    gid: int,
    home: str,
    realm: str,
    path: bool = False,
) -> str: ...
def check_username(username: str) -> None: ...
