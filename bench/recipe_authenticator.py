"""The ORIGINAL recipe that pamkrb replaces, rebuilt as a JupyterHub authenticator.

INSECURE BASELINE FOR THE BENCHMARKS ONLY -- NEVER USE IT ON A REAL HUB.

It is what the usual patch to JupyterHub's ``auth.py`` did, step for step:
stock PAM authentication, then three subprocesses (``id -u``, ``id -g``,
``kinit -kt``) writing the predictable ``/tmp/krb5cc_<uid>`` as root, then
``chown`` and ``chmod`` *by path*. Both follow a symbolic link, so any local
user who plants ``/tmp/krb5cc_<uid of a victim>`` -> ``/etc/shadow`` (or any
file they like) before the victim's next login gets root to hand that file to
the victim's uid; and ``kinit`` as root writes wherever the path leads. The
same per-user work ran again on every notebook open and autosave.

Where the work runs matters for the event-loop benchmark: the patch sat in
``PAMAuthenticator.authenticate``, which JupyterHub wraps in tornado's
``run_on_executor``. So the subprocesses run on the authenticator's executor
threads (``executor_threads``, 4 by default), not on the event loop. The loop
stays responsive, but a KDC that never answers ties up every executor thread
for ~30 s per login (``kinit`` has no time-out of its own), and the logins
queue behind it -- including password checks of users who would not even
need the KDC. This module reproduces exactly that: ``authenticate`` below is
run on the same executor and calls the stock body through ``__wrapped__``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping

from jupyterhub.auth import PAMAuthenticator
from tornado.concurrent import run_on_executor
from traitlets import Unicode


def recipe_kinit(
    username: str,
    keytab: str,
    principal: str,
    *,
    env: Mapping[str, str] | None = None,
) -> str:
    """The recipe's per-login (and per-save) work; returns the cache path.

    INSECURE: root writes and chowns a predictable path in /tmp, following
    whatever a local user has put there. Kept only as the benchmarks' baseline.
    """
    uid = subprocess.check_output(["id", "-u", username], env=env).decode().strip()
    gid = subprocess.check_output(["id", "-g", username], env=env).decode().strip()
    ccache = f"/tmp/krb5cc_{uid}"
    # The recipe ignored kinit's exit status (subprocess.call); a failure only
    # shows up as the chown below finding no file.
    subprocess.call(["kinit", "-kt", keytab, "-c", ccache, principal], env=env)
    os.chown(ccache, int(uid), int(gid))  # by path: follows a planted symlink
    os.chmod(ccache, 0o600)  # by path: same
    return ccache


class RecipeAuthenticator(PAMAuthenticator):
    """Stock PAMAuthenticator + the recipe's subprocess kinit. INSECURE baseline."""

    recipe_keytab = Unicode(
        "/home/{username}/{username}.keytab",
        help="Keytab path; {username} is the login name. Benchmarks only.",
    ).tag(config=True)

    recipe_principal = Unicode(
        "{username}",
        help="Principal; {username} is the login name (default realm). Benchmarks only.",
    ).tag(config=True)

    @run_on_executor
    def authenticate(self, handler, data):
        # The stock body, on this (executor) thread, exactly as the patch ran it.
        username = PAMAuthenticator.authenticate.__wrapped__(self, handler, data)
        if username:
            recipe_kinit(
                username,
                self.recipe_keytab.format(username=username),
                self.recipe_principal.format(username=username),
            )
        return username
