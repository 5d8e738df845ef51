"""pamkrb: JupyterHub PAM authentication with a Kerberos ticket per user."""

from importlib.metadata import PackageNotFoundError, version

from .authenticator import PAMKerberosAuthenticator

try:
    __version__ = version("jupyterhub-pamkrb")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"

__all__ = ["PAMKerberosAuthenticator", "__version__"]
