"""Throwaway Kerberos realms, Unix users and JupyterHubs on loopback.

Shared by the pytest fixtures (``tests/conftest.py``), ``make demo``
(``tools/demo.py``) and the benchmarks (``bench/``), which all ``import sandbox``
with ``tools/`` on the path. Everything here runs real components: MIT
``krb5kdc`` and ``kadmin.local`` with their own ``KRB5_CONFIG``
(``/etc/krb5.conf`` is never read or written), ``useradd``/``chpasswd``
accounts, a PAM service file, ``jupyterhub`` with configurable-http-proxy and
LocalProcessSpawner, and nginx.

Most of it needs root. Only the standard library is imported at module level;
``requests``, ``urllib3`` and ``websocket-client`` (present in the venv) are
imported by the helpers that use them. No shell is involved anywhere: every
subprocess gets an argument list.

One module per concern; this file only re-exports their public names:

- ``process``: deadlines, loopback ports, subprocesses, the stop-by-PID service base
- ``realm``: the realm and its KDC, ``klist``, a silent KDC, a realm on a skewed clock
- ``users``: sandbox accounts, the PAM test service, their processes
- ``hub``: JupyterHub, logins, the ``pamkrb`` console script
- ``kernel``: kernels over REST and WebSocket
- ``nginx``: nginx, test certificates, test names resolved to loopback
- ``fuse``: /dev/fuse opened to users, a user's bindfs mount that root cannot enter
- ``probes``: file state, credential files, child processes, latency, metrics
- ``hadoop``: a Kerberos-secured HDFS (NameNode, DataNode) of Apache Hadoop
  2.7.3 on loopback, and the jars' download cache. Not re-exported: import
  ``sandbox.hadoop``.
- ``samba``: a Samba AD domain controller in its own network, mount and PID
  namespaces, and a winbind member of it. Not re-exported: import ``sandbox.samba``.
- ``slurm``: a one-node Slurm cluster (munged, slurmctld, slurmd) on loopback
  with a private ``/tmp`` per job. Not re-exported: import ``sandbox.slurm``.
- ``namespace``: ``NamespacedSpawner``, a server "on another host" (private
  mount namespace). Not re-exported: it imports JupyterHub, and the hub loads
  it by name (``Hub(import_paths=[tools/])``).
"""

from .fuse import FUSE_DEVICE, fuse_device_mode, is_mount_point, user_fuse_mount
from .hub import SYSTEM_PATH, VENV, VENV_BIN, Hub, login_and_spawn, login_and_spawn_at, npm_global_bin, run_pamkrb
from .kernel import kernel_execute, kernel_websocket, run_in_server, start_kernel
from .nginx import Nginx, resolve_to_loopback, self_signed_certificate
from .probes import (
    TEMP_MARKER_PAMKRB,
    FileState,
    LatencyProbe,
    child_processes,
    credential_entries,
    hub_metric,
    pamkrb_temp_files,
)
from .process import SandboxError, free_port, port_accepts, wait_until
from .realm import Realm, SilentKDC, SkewedRealm, TicketCache, faketime_library
from .users import (
    PAM_TEST_SERVICE,
    PAM_TEST_SERVICE_TEXT,
    SANDBOX_GECOS,
    UnixUser,
    foreign_sandbox_uids,
    install_pam_test_service,
    pam_service_path,
    process_environ,
    provisioned_user,
    provisioned_users,
    remove_pam_test_service,
    server_token,
    singleuser_pids,
)

__all__ = [
    "FUSE_DEVICE",
    "PAM_TEST_SERVICE",
    "PAM_TEST_SERVICE_TEXT",
    "SANDBOX_GECOS",
    "SYSTEM_PATH",
    "TEMP_MARKER_PAMKRB",
    "VENV",
    "VENV_BIN",
    "FileState",
    "Hub",
    "LatencyProbe",
    "Nginx",
    "Realm",
    "SandboxError",
    "SilentKDC",
    "SkewedRealm",
    "TicketCache",
    "UnixUser",
    "child_processes",
    "credential_entries",
    "faketime_library",
    "foreign_sandbox_uids",
    "free_port",
    "fuse_device_mode",
    "hub_metric",
    "install_pam_test_service",
    "is_mount_point",
    "kernel_execute",
    "kernel_websocket",
    "login_and_spawn",
    "login_and_spawn_at",
    "npm_global_bin",
    "pam_service_path",
    "pamkrb_temp_files",
    "port_accepts",
    "process_environ",
    "provisioned_user",
    "provisioned_users",
    "remove_pam_test_service",
    "resolve_to_loopback",
    "run_in_server",
    "run_pamkrb",
    "self_signed_certificate",
    "server_token",
    "singleuser_pids",
    "start_kernel",
    "user_fuse_mount",
    "wait_until",
]
