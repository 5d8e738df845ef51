"""pamkrb: JupyterHub PAM authentication with a Kerberos ticket per user.

The package is also the ``pamkrb`` Jupyter server extension, which keeps the
ticket fresh inside each user's server. The authenticator is imported lazily:
single-user servers load this package without needing JupyterHub's hub-side
machinery.
"""

from importlib.metadata import PackageNotFoundError, version
from typing import Any

# The native core links the host's libpam and libkrb5 (never bundled copies).
# Loading it here turns a host without them into one clear ImportError at
# `import pamkrb`, instead of a loader message from whichever module is first.
try:
    from . import _native  # noqa: F401
except ImportError as error:
    from ._system_libraries import explain

    message = explain(error)
    if message is None:
        raise
    raise ImportError(message, name="pamkrb._native") from None

try:
    __version__ = version("jupyterhub-pamkrb")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"

__all__ = ["PAMKerberosAuthenticator", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "PAMKerberosAuthenticator":
        from .authenticator import PAMKerberosAuthenticator

        return PAMKerberosAuthenticator
    raise AttributeError(f"module 'pamkrb' has no attribute {name!r}")


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    return [{"module": "pamkrb.serverextension", "app": _extension_app()}]


def _extension_app() -> type:
    from .serverextension import KerberosTicketExtension

    return KerberosTicketExtension
