"""`make demo`: pamkrb in a sandbox you can log in to from a browser.

Starts a throwaway Kerberos realm on loopback, creates the Unix user
``pamkrb-demo`` with a random password, its principal and keytab, and runs
JupyterHub with pamkrb on http://127.0.0.1:8000. Ctrl-C (or SIGTERM) stops the
hub and the KDC and removes the user, its home, its ticket cache, the realm and
the PAM service file this script created.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sandbox

DEMO_USER = "pamkrb-demo"
PORT = 8000
REPO = Path(__file__).resolve().parents[1]
LOG = REPO / "test-artifacts" / "demo-jupyterhub.log"


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> int:
    if os.geteuid() != 0:
        print(
            "make demo must run as root: it creates a Unix user, a PAM service "
            "and runs JupyterHub, which switches to that user.",
            file=sys.stderr,
        )
        return 1
    if sandbox.port_accepts(PORT):
        print(
            f"Port {PORT} on 127.0.0.1 is already in use; stop whatever listens there (another demo?) and try again.",
            file=sys.stderr,
        )
        return 1
    # Ctrl-C must reach the cleanup even when started with SIGINT ignored (as
    # background jobs of a non-interactive shell are).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)

    realm: sandbox.Realm | None = None
    user: sandbox.UnixUser | None = None
    hub: sandbox.Hub | None = None
    pam_file_existed = sandbox.pam_service_path().exists()
    try:
        realm = sandbox.Realm("PAMKRB.DEMO")
        realm.start()
        leftover = sandbox.UnixUser.existing(DEMO_USER)
        if leftover is not None:  # from an interrupted earlier demo
            leftover.remove()
        user = sandbox.UnixUser.create(name=DEMO_USER)
        principal = realm.add_principal(user.name)
        keytab = realm.write_keytab(principal, user.home / f"{user.name}.keytab", user.uid, user.gid)
        sandbox.install_pam_test_service()
        LOG.parent.mkdir(parents=True, exist_ok=True)
        LOG.unlink(missing_ok=True)
        hub = sandbox.Hub(
            realm,
            port=PORT,
            log_path=LOG,
            config={
                "PAMKerberosAuthenticator.service": sandbox.PAM_TEST_SERVICE,
                "Authenticator.allow_all": False,
                "Authenticator.allowed_users": {user.name},
            },
        )
        hub.start()

        print(
            f"""
pamkrb demo
  realm      {realm.name} (KDC on 127.0.0.1:{realm.port}, KRB5_CONFIG={realm.krb5_conf})
  user       {user.name}, principal {principal}
  keytab     {keytab}
  cache      {user.default_ccache} (written at login, owned by the user, mode 0600)
  hub log    {LOG}

Open {hub.url} and log in as {user.name} / {user.password}
Kerberos status: {hub.url}/user/{user.name}/pamkrb/status
  (also in JupyterLab's status bar, and under Help > Kerberos ticket status)

Press Ctrl-C to stop and remove everything.
""",
            flush=True,
        )
        announced = 0.0
        while hub.running:
            mtime = _mtime(user.default_ccache)
            if mtime and mtime != announced:
                first = not announced
                announced = mtime
                ticket = realm.klist(user.default_ccache)
                print(
                    f"Ticket for {ticket.principal} installed at "
                    f"{user.default_ccache}, valid until {ticket.expires:%H:%M:%S}",
                    flush=True,
                )
                if first:
                    # What an admin would run to ask "does alice have a ticket?"
                    doctor = sandbox.run_pamkrb(
                        ["doctor", user.name, "--config", str(hub.config_path)],
                        env={**os.environ, **realm.client_env()},
                    )
                    print(
                        f"\n$ pamkrb doctor {user.name} --config {hub.config_path}",
                        doctor.stdout,
                        doctor.stderr,
                        sep="\n",
                        flush=True,
                    )
            time.sleep(1)
        print(f"JupyterHub stopped unexpectedly; see {LOG}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping...", flush=True)
        return 0
    except sandbox.SandboxError as e:
        print(f"demo failed: {e}", file=sys.stderr)
        return 1
    finally:
        # Ignore further Ctrl-C while cleaning up, so nothing is left behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if hub is not None:
            hub.close()
        if user is not None:
            user.remove()
        if realm is not None:
            realm.close()
        if not pam_file_existed:
            sandbox.remove_pam_test_service()
        print("Demo stopped; user, realm and hub removed.", flush=True)


def _mtime(path: Path) -> float:
    try:
        return os.lstat(path).st_mtime
    except FileNotFoundError:
        return 0.0


if __name__ == "__main__":
    sys.exit(main())
