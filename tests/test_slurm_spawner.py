"""Notebook servers started by Slurm through BatchSpawner, with the ticket broker.

A one-node Slurm cluster (tests/slurm_fixtures.py, tools/sandbox/slurm.py)
runs each server as a batch job of its user, with ``job_container/tmpfs``:
the job has a private /tmp and so shares no credential cache with the hub,
like a job on another node. The keytabs are root's alone. The hub renews the
tickets and serves them; the pamkrb server extension in the job fetches and
installs them.

The file runs in the Makefile's LONG_TESTS group (about 9 minutes, mostly
the idle server's four ticket lifetimes and a KDC outage of one lifetime),
in a pytest process beside the main suite. Nothing here can meet that suite:
the cluster's ports are free ones, its files under a private
/var/tmp/pamkrb-slurm-* directory (its job steps found by that SLURM_CONF),
the outage test stops a realm of its own, and the main suite starts no Slurm.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sandbox
from conftest import BROKER_LIFETIME, artifact_dir, form_login, logged_in
from sandbox.slurm import SlurmCluster

pytest_plugins = ["slurm_fixtures"]

# The job's own view of things, printed as JSON: who it runs as, what its
# /tmp is, and whether the host's /tmp shows through.
JOB_PROBE = """\
#!/usr/bin/python3
import json, os
mounts = [line.split() for line in open("/proc/self/mountinfo")]
tmp = [fields[3] for fields in mounts if fields[4] == "/tmp"]
with open("/tmp/written-by-job", "w") as f:
    f.write("job")
print(json.dumps({
    "uid": os.getuid(),
    "tmp_root": tmp[-1] if tmp else None,
    "tmp_owner": os.stat("/tmp").st_uid,
    "tmp_entries": sorted(os.listdir("/tmp")),
    "host_marker_visible": os.path.exists(os.environ["HOST_MARKER"]),
}))
"""


def test_a_job_runs_as_its_user_with_a_private_tmp(slurm: SlurmCluster, bare_user: sandbox.UnixUser) -> None:
    """The harness itself: a job submitted by a user runs as that user, in a
    /tmp of its own (the host's is invisible, the job's is a directory under
    the cluster's BasePath), and that /tmp is removed when the job ends."""
    user = bare_user
    marker = Path(f"/tmp/pamkrb-slurm-host-{secrets.token_hex(4)}")
    marker.write_text("host")
    try:
        output = user.home / "probe.json"
        job = slurm.submit(
            JOB_PROBE,
            user=user,
            options=(f"--output={output}", "--export=HOST_MARKER", f"--chdir={user.home}"),
            env={"HOST_MARKER": str(marker)},
        )
        slurm.wait_job_gone(job, timeout=60)
        seen = json.loads(output.read_text())
    finally:
        marker.unlink()
    assert seen["uid"] == user.uid
    assert seen["tmp_root"] == str(slurm.job_tmp(job)), seen
    assert seen["tmp_owner"] == user.uid
    assert seen["tmp_entries"] == ["written-by-job"], "the job's /tmp started empty"
    assert seen["host_marker_visible"] is False
    # Gone with the job, files and all.
    assert not slurm.job_tmp(job).exists()
    assert str(job) not in slurm.job_dirs()


# -- JupyterHub's SlurmSpawner with the ticket broker ---------------------------

LIFETIME = BROKER_LIFETIME
MARGIN = 60
# How many ticket lifetimes the idle server must come through: issue 22's 4
# (about 6 minutes, mostly waiting, which is why this file runs in the
# Makefile's LONG_TESTS group, beside the main suite). PAMKRB_SLURM_LIFETIMES
# shortens it by hand while working on the file.
LIFETIMES = float(os.environ.get("PAMKRB_SLURM_LIFETIMES", "4"))

# What the job needs that is not Slurm's default. The exec prefix: there is
# no sudo here. The server's address: batchspawner resets Spawner.ip to its
# own default, 0.0.0.0, whatever the config says, and connects to the node
# name squeue reports; pinning both to 127.0.0.1 keeps every server on
# loopback (this cluster's one node). The poll interval: JupyterHub notices
# a job that ended by itself (scancel, time limit) only when it polls the
# spawner, by default every 30 s, and only then stops the broker's renewals
# for it; 2 s here. The environment: JupyterHub
# 6 keeps none of its own (env_keep is only JUPYTERHUB_SINGLEUSER_APP;
# LocalProcessSpawner adds PATH itself, BatchSpawner does not), so without
# PATH srun cannot find batchspawner-singleuser ("execve(): No such file or
# directory"); SLURM_CONF must reach sbatch (run with the spawner's
# environment) and srun in the job.
SLURM_SPAWNER_CONFIG: dict[str, Any] = {
    "JupyterHub.spawner_class": "batchspawner.SlurmSpawner",
    "SlurmSpawner.exec_prefix": "/usr/sbin/runuser -u {username} --",
    "SlurmSpawner.state_exechost_exp": "127.0.0.1",
    "SlurmSpawner.startup_poll_interval": 0.25,
    "Spawner.poll_interval": 2,
    "Spawner.args": [
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.news_url=None",
        "--ServerApp.ip=127.0.0.1",
    ],
    "PAMKerberosAuthenticator.ticket_broker": True,
    "PAMKerberosAuthenticator.refresh_margin": MARGIN,
    "PAMKerberosAuthenticator.renewable_lifetime": 3600,
}
# batchspawner registers its API handler (the job reports its port there)
# when imported, which must happen before the hub builds its handlers.
SLURM_SPAWNER_EXTRA_CONFIG = """\
import batchspawner  # noqa: F401
c.Spawner.env_keep.extend(["PATH", "LANG", "SLURM_CONF"])
"""

KERNEL_CHECK = """
import json, os, subprocess
cache = os.environ["KRB5CCNAME"]
path = cache.split(":", 1)[-1]
klist = subprocess.run(["klist", "-c", cache], capture_output=True, text=True)
principal = [line.split(": ", 1)[1] for line in klist.stdout.splitlines() if line.startswith("Default principal:")]
st = os.stat(path)
keytab = os.path.join(os.environ["PAMKRB_TEST_KEYTAB_DIR"], os.environ["USER"] + ".keytab")
try:
    open(keytab, "rb")
    keytab_access = "opened"
except OSError as e:
    keytab_access = type(e).__name__
tmp_root = [line.split()[3] for line in open("/proc/self/mountinfo") if line.split()[4] == "/tmp"]
print(json.dumps({
    "cache": cache,
    "valid": subprocess.run(["klist", "-s", "-c", cache]).returncode == 0,
    "principal": principal[0] if principal else None,
    "uid": os.getuid(),
    "cache_uid": st.st_uid,
    "cache_mode": st.st_mode & 0o777,
    "cache_file": [st.st_dev, st.st_ino],
    "tmp_root": tmp_root[-1] if tmp_root else None,
    "host_marker_visible": os.path.exists(os.environ["PAMKRB_TEST_HOST_MARKER"]),
    "keytab": keytab_access,
    "keytab_env": os.environ.get("PAMKRB_KEYTAB"),
    "keytab_in_env": any(keytab in value for value in os.environ.values()),
    "broker": os.environ.get("PAMKRB_TICKET_BROKER"),
    "job": os.environ.get("SLURM_JOB_ID"),
}))
"""


def kdc_requests_for(realm: sandbox.Realm, principal: str) -> int:
    """AS and TGS requests the KDC logged for ``principal``'s own tickets."""
    try:
        text = realm.kdc_log.read_text()
    except FileNotFoundError:
        return 0
    return sum(1 for line in text.splitlines() if f", {principal} for " in line)


def seconds_left(realm: sandbox.Realm, cache: Path) -> float | None:
    """Seconds left on the TGT in ``cache`` (read from the host, as root), None if unreadable."""
    try:
        return realm.klist(cache).expires.timestamp() - time.time()
    except sandbox.SandboxError:
        return None


class JobWatch(threading.Thread):
    """Watches one user's server job from the host, every 0.1 s, without
    touching the server: when Slurm first lists the job, when it runs, and
    when the job's own /tmp first holds a valid ticket. Times are
    ``time.monotonic()``."""

    def __init__(self, slurm: SlurmCluster, realm: sandbox.Realm, user: sandbox.UnixUser) -> None:
        super().__init__(name=f"watch-{user.name}", daemon=True)
        self.slurm, self.realm, self.user = slurm, realm, user
        self.job: str | None = None
        self.times: dict[str, float] = {}
        self.error: BaseException | None = None
        self._done = threading.Event()

    @property
    def cache(self) -> Path:
        assert self.job is not None, "no job seen yet"
        return self.slurm.job_tmp(self.job) / f"krb5cc_{self.user.uid}"

    def run(self) -> None:
        try:
            while not self._done.is_set() and "ticket" not in self.times:
                jobs = self.slurm.jobs(user=self.user.name)
                if self.job is None and jobs:
                    self.job = min(jobs, key=int)
                    self.times["listed"] = time.monotonic()
                if self.job is not None and jobs.get(self.job) == "RUNNING":
                    self.times.setdefault("running", time.monotonic())
                if "running" in self.times and (seconds_left(self.realm, self.cache) or 0) > 0:
                    self.times["ticket"] = time.monotonic()
                self._done.wait(0.1)
        except BaseException as e:  # reported by wait_for_ticket
            self.error = e

    def finish(self) -> None:
        self._done.set()

    def wait_for_ticket(self, timeout: float) -> None:
        self.join(timeout)
        self._done.set()
        if self.error is not None:
            raise self.error
        assert "ticket" in self.times, f"no delivered ticket in the job's /tmp within {timeout:g} s: {self.times}"


def spawn(
    hub: sandbox.Hub,
    slurm: SlurmCluster,
    realm: sandbox.Realm,
    user: sandbox.UnixUser,
    user_options: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Log ``user`` in, which submits their server as a Slurm job (with
    ``user_options``: log in, then start it through the hub's API with
    them, e.g. batchspawner's ``runtime``); wait for the server and for the
    ticket in the job's /tmp. Returns the session, the job id, its cache
    path on the host and the times (seconds)."""
    watch = JobWatch(slurm, realm, user)
    watch.start()
    began = time.monotonic()
    try:
        if user_options is None:
            response = hub.login(user.name, user.password)
            assert "/hub/login" not in response.url, f"login of {user.name} failed:\n{hub.log_tail()}"
        else:
            response = form_login(hub, user.name, user.password)
            assert logged_in(response), f"login of {user.name} failed:\n{hub.log_tail()}"
            started = response.session.post(
                f"{hub.url}/hub/api/users/{user.name}/server",
                json=user_options,
                headers={"X-XSRFToken": response.session.cookies.get("_xsrf", path="/hub/") or ""},
                timeout=60,
            )
            assert started.status_code in (201, 202), started.text
        hub.wait_for_server(response.session, user.name, timeout=60)
        up = time.monotonic()
        watch.wait_for_ticket(timeout=30)
    finally:
        watch.finish()
    times = watch.times
    return {
        "session": response.session,
        "job": watch.job,
        "cache": watch.cache,
        "times": {
            "login_to_job_listed": times["listed"] - began,
            "job_listed_to_running": times["running"] - times["listed"],
            "job_running_to_server_up": up - times["running"],
            "job_running_to_ticket_in_job_tmp": times["ticket"] - times["running"],
        },
        "running_at": times["running"],
    }


class IdleTicketMonitor(threading.Thread):
    """Reads one job's cache from the host once a second for ``seconds``
    (klist as root in the job's /tmp: nothing reaches the server), noting
    every ticket seen, the least time left, and any sample with none left."""

    def __init__(self, realm: sandbox.Realm, cache: Path, seconds: float) -> None:
        super().__init__(name="idle-ticket-monitor", daemon=True)
        self.realm, self.cache, self.seconds = realm, cache, seconds
        self.expiries: set[float] = set()
        self.lowest = float("inf")
        self.lapses: list[float] = []
        self.unreadable = 0
        self.elapsed = 0.0
        self._done = threading.Event()

    def finish(self) -> None:
        self._done.set()

    def run(self) -> None:
        began = time.monotonic()
        while time.monotonic() - began < self.seconds and not self._done.is_set():
            try:
                expires = self.realm.klist(self.cache).expires.timestamp()
            except sandbox.SandboxError:
                self.unreadable += 1
            else:
                left = expires - time.time()
                self.expiries.add(expires)
                self.lowest = min(self.lowest, left)
                if left <= 0:
                    self.lapses.append(left)
            self._done.wait(1)
        self.elapsed = time.monotonic() - began


def check_in_kernel(hub: sandbox.Hub, session: Any, user: sandbox.UnixUser) -> dict[str, Any]:
    return sandbox.run_in_server(session, f"{hub.url}/user/{user.name}", KERNEL_CHECK)


def forgot(hub: sandbox.Hub, user: sandbox.UnixUser) -> bool:
    """Whether the hub has said it stopped keeping (renewing) the user's ticket."""
    return f"Stopped keeping the Kerberos ticket of {user.name!r} (server stopped)" in hub.log_text()


@pytest.fixture
def slurm_users(broker_realm: sandbox.Realm, keytab_dir: Path) -> Iterator[list[sandbox.UnixUser]]:
    """Three users whose keytabs only root can read (``keytab_dir``/<name>.keytab, root, 0600)."""
    users: list[sandbox.UnixUser] = []
    try:
        for _ in range(3):
            user = sandbox.UnixUser.create("pkj")
            users.append(user)
            principal = broker_realm.add_principal(user.name)
            broker_realm.write_keytab(principal, keytab_dir / f"{user.name}.keytab", 0, 0)
        yield users
    finally:
        for user in users:
            (keytab_dir / f"{user.name}.keytab").unlink(missing_ok=True)
            user.remove()


# The idle window, plus three spawns, a time-limited job and their ends, under load.
@pytest.mark.timeout(LIFETIMES * LIFETIME + 300)
def test_slurm_jobs_get_tickets_from_the_broker_and_lose_them_when_they_end(
    hub_factory, slurm: SlurmCluster, broker_realm: sandbox.Realm, keytab_dir: Path, slurm_users, request
) -> None:
    """Users' servers run as Slurm jobs. Each job's kernel sees a valid
    ticket of its user within seconds of the job starting, in the job's own
    /tmp, with the keytab out of reach. The first user cancels their job
    (scancel): the ticket goes with the job's /tmp and the hub stops renewing
    it. A third user's job reaches its one-minute time limit meanwhile, with
    the same outcome. The second user's idle server keeps a valid ticket for
    LIFETIMES ticket lifetimes; then a save and a new kernel see it, and
    stopping the server through the hub's API removes it the same way."""
    cancelled, idle, limited = slurm_users
    marker = Path(f"/tmp/pamkrb-slurm-host-{secrets.token_hex(4)}")
    config = dict(SLURM_SPAWNER_CONFIG)
    config["PAMKerberosAuthenticator.keytab_template"] = f"{keytab_dir}/{{username}}.keytab"
    config["Spawner.environment"] = {
        "PAMKRB_TEST_KEYTAB_DIR": str(keytab_dir),
        "PAMKRB_TEST_HOST_MARKER": str(marker),
    }
    figures: dict[str, Any] = {"slurm_start_seconds": slurm.started_in, "lifetimes": LIFETIMES}
    monitor: IdleTicketMonitor | None = None
    try:
        marker.write_text("the hub's /tmp")
        hub = hub_factory(config, realm=broker_realm, extra_config=SLURM_SPAWNER_EXTRA_CONFIG)
        servers = {}
        for user in (cancelled, idle):
            servers[user.name] = server = spawn(hub, slurm, broker_realm, user)
            seen = check_in_kernel(hub, server["session"], user)
            server["times"]["job_running_to_kernel_sees_ticket"] = time.monotonic() - server["running_at"]
            figures[user.name] = server["times"]

            # The kernel runs in the job, as the user, with a valid ticket of theirs.
            assert seen["job"] == server["job"]
            assert seen["uid"] == seen["cache_uid"] == user.uid
            assert seen["cache_mode"] == 0o600
            assert seen["valid"] is True, seen
            assert seen["principal"] == f"{user.name}@{broker_realm.name}"
            assert seen["broker"] == "1"
            # The job's /tmp is its own: not the hub's, whose cache is another file.
            assert seen["cache"] == f"FILE:/tmp/krb5cc_{user.uid}"
            assert seen["tmp_root"] == str(slurm.job_tmp(server["job"]))
            assert seen["host_marker_visible"] is False
            job_cache = os.stat(server["cache"])
            assert seen["cache_file"] == [job_cache.st_dev, job_cache.st_ino]
            hub_cache = os.stat(user.default_ccache)
            assert (hub_cache.st_dev, hub_cache.st_ino) != (job_cache.st_dev, job_cache.st_ino)
            # The keytab is root's: unreadable in the job, and not named in its environment.
            assert seen["keytab"] == "PermissionError", seen
            assert seen["keytab_env"] is None
            assert seen["keytab_in_env"] is False

        # Another user learns nothing of the job's environment through Slurm:
        # not the server's token (the one credential the ticket API takes).
        token = sandbox.server_token(cancelled.uid)
        for query in (["scontrol", "-dd", "show", "job", servers[cancelled.name]["job"]], ["squeue", "-o", "%all"]):
            shown = slurm.command(query, user=limited)
            assert shown.returncode == 0, shown.stderr
            assert token not in shown.stdout + shown.stderr

        # From now on nothing touches the second user's server for LIFETIMES
        # ticket lifetimes; its ticket is read from the host meanwhile.
        monitor = IdleTicketMonitor(broker_realm, servers[idle.name]["cache"], LIFETIMES * LIFETIME)
        monitor.start()

        # scancel by the user: the ticket goes with the job's /tmp, the hub
        # notices (its poll of the job) and stops keeping the ticket.
        job = servers[cancelled.name]["job"]
        cancelled_at = time.monotonic()
        cancel = slurm.command(["scancel", job], user=cancelled)
        assert cancel.returncode == 0, cancel.stderr
        slurm.wait_job_gone(job)
        figures[cancelled.name]["scancel_to_job_tmp_gone"] = time.monotonic() - cancelled_at
        assert not servers[cancelled.name]["cache"].exists()
        sandbox.wait_until(lambda: forgot(hub, cancelled), timeout=30, message="the hub to notice the cancelled job")
        figures[cancelled.name]["scancel_to_hub_forgot"] = time.monotonic() - cancelled_at
        assert not cancelled.default_ccache.exists(), "the hub's copy outlived the job"
        cancelled_principal = f"{cancelled.name}@{broker_realm.name}"
        requests_after_cancel = kdc_requests_for(broker_realm, cancelled_principal)

        # A job with a time limit (batchspawner's "runtime", as a user option),
        # on the CPU the cancelled job freed; it ends during the idle window.
        servers[limited.name] = spawn(hub, slurm, broker_realm, limited, {"runtime": "00:01:00"})
        figures[limited.name] = servers[limited.name]["times"]
        limited_principal = f"{limited.name}@{broker_realm.name}"
        limited_job = servers[limited.name]["job"]
        limited_end: dict[str, float] = {}

        # While the idle window runs: the time-limited job, watched from
        # Slurm and the hub's log only.
        while monitor.is_alive():
            if "job_ended" not in limited_end and not slurm.jobs(user=limited.name):
                limited_end["job_ended"] = time.monotonic()
            if "hub_forgot" not in limited_end and forgot(hub, limited):
                limited_end["hub_forgot"] = time.monotonic()
                limited_end["kdc_requests"] = kdc_requests_for(broker_realm, limited_principal)
            monitor.join(1)

        # The idle server's ticket never lapsed, and was replaced all along.
        figures[idle.name]["idle_seconds"] = round(monitor.elapsed, 1)
        figures[idle.name]["tickets_seen_while_idle"] = len(monitor.expiries)
        figures[idle.name]["lowest_seconds_left"] = round(monitor.lowest, 1)
        assert not monitor.lapses, f"the job's ticket had expired at {len(monitor.lapses)} samples"
        assert monitor.unreadable <= 2, f"the job's cache was unreadable {monitor.unreadable} times"
        assert max(monitor.expiries) - min(monitor.expiries) >= (LIFETIMES - 1) * LIFETIME

        # All that time nothing renewed the cancelled user's ticket.
        assert kdc_requests_for(broker_realm, cancelled_principal) == requests_after_cancel

        # The time limit ended the other job: its ticket went with its /tmp,
        # the hub noticed and has not renewed it since.
        if "hub_forgot" not in limited_end:
            sandbox.wait_until(lambda: forgot(hub, limited), timeout=120, message="the hub to notice the time limit")
            limited_end["hub_forgot"] = time.monotonic()
            limited_end["kdc_requests"] = kdc_requests_for(broker_realm, limited_principal)
        slurm.wait_job_gone(limited_job)
        running_at = servers[limited.name]["running_at"]
        figures[limited.name]["job_running_to_job_ended"] = limited_end.get("job_ended", time.monotonic()) - running_at
        figures[limited.name]["job_running_to_hub_forgot"] = limited_end["hub_forgot"] - running_at
        job_log = limited.home / f"jupyterhub_slurmspawner_{limited_job}.log"
        assert "DUE TO TIME LIMIT" in job_log.read_text(errors="replace")
        assert not servers[limited.name]["cache"].exists()
        assert not limited.default_ccache.exists()
        assert kdc_requests_for(broker_realm, limited_principal) == limited_end["kdc_requests"]

        session = servers[idle.name]["session"]
        status = session.get(f"{hub.url}/user/{idle.name}/pamkrb/api/status", timeout=30).json()
        assert status["renewed_by"] == "hub"
        assert status["state"] in ("valid", "expiring"), status
        saved = session.put(
            f"{hub.url}/user/{idle.name}/api/contents/x.txt",
            json={"type": "file", "format": "text", "content": "saved"},
            headers={"X-XSRFToken": session.cookies.get("_xsrf", path=f"/user/{idle.name}/") or ""},
            timeout=30,
        )
        assert saved.status_code in (200, 201), saved.text
        seen = check_in_kernel(hub, session, idle)
        assert seen["valid"] is True, seen
        assert seen["principal"] == f"{idle.name}@{broker_realm.name}"

        # Stopping the server through the hub's API cancels the job: the
        # ticket goes with its /tmp, and the hub stops keeping it.
        job = servers[idle.name]["job"]
        stopped_at = time.monotonic()
        stop = session.delete(
            f"{hub.url}/hub/api/users/{idle.name}/server",
            headers={"X-XSRFToken": session.cookies.get("_xsrf", path="/hub/") or ""},
            timeout=60,
        )
        assert stop.status_code in (202, 204), stop.text
        slurm.wait_job_gone(job)
        figures[idle.name]["stop_to_job_tmp_gone"] = time.monotonic() - stopped_at
        assert not servers[idle.name]["cache"].exists()
        sandbox.wait_until(lambda: forgot(hub, idle), timeout=30, message="the hub to stop keeping the ticket")
        figures[idle.name]["stop_to_hub_forgot"] = time.monotonic() - stopped_at
        assert not idle.default_ccache.exists()
    finally:
        if monitor is not None:
            monitor.finish()
        marker.unlink(missing_ok=True)
        artifacts = artifact_dir(request.node.nodeid)
        (artifacts / "timings.json").write_text(json.dumps(figures, indent=2, default=str) + "\n")
        for user in slurm_users:
            for log in user.home.glob("jupyterhub_slurmspawner_*.log"):
                shutil.copyfile(log, artifacts / f"{user.name}-{log.name}")


# -- a KDC outage inside a job ----------------------------------------------------


# One lifetime down, up to three more to recover, and a spawn.
@pytest.mark.timeout(5 * LIFETIME + 180)
def test_a_kdc_outage_inside_a_job_is_reported_and_the_ticket_recovers(
    hub_factory, slurm: SlurmCluster, host_dir: Path, keytab_dir: Path, bare_user: sandbox.UnixUser, request
) -> None:
    """The KDC is down for one ticket lifetime while a user's server runs as
    a Slurm job. The server's status, asked of the server in the job, reports
    the error while it lasts (the hub cannot renew, so the job gets nothing
    newer); the ticket in the job runs out meanwhile and the server keeps
    answering. Once the KDC is back the job's /tmp holds a valid ticket issued
    after the outage, a kernel sees it, and the status is clear again.

    A realm of this test's own: stopping the session's ``broker_realm`` would
    fail whatever else shares it meanwhile."""
    user = bare_user
    realm = sandbox.Realm("SLURMKDC.TEST", max_life=LIFETIME, base_dir=host_dir)
    keytab = keytab_dir / f"{user.name}.keytab"
    figures: dict[str, Any] = {}
    try:
        realm.start()
        realm.write_keytab(realm.add_principal(user.name), keytab, 0, 0)
        config = dict(SLURM_SPAWNER_CONFIG)
        config["PAMKerberosAuthenticator.keytab_template"] = f"{keytab_dir}/{{username}}.keytab"
        # A down KDC refuses at once here (nothing listens); the timeout only
        # bounds an attempt that would hang.
        config["PAMKerberosAuthenticator.kdc_timeout"] = 3
        config["Spawner.environment"] = {
            "PAMKRB_TEST_KEYTAB_DIR": str(keytab_dir),
            "PAMKRB_TEST_HOST_MARKER": "/nonexistent",
        }
        hub = hub_factory(config, realm=realm, extra_config=SLURM_SPAWNER_EXTRA_CONFIG)
        server = spawn(hub, slurm, realm, user)
        figures["times"] = server["times"]
        session, cache = server["session"], server["cache"]
        status_url = f"{hub.url}/user/{user.name}/pamkrb/api/status"

        def status() -> dict[str, Any]:
            response = session.get(status_url, timeout=30)
            assert response.status_code == 200, response.text
            return dict(response.json())

        before = status()
        assert before["renewed_by"] == "hub"
        assert before["last_error"] is None, before

        realm.stop()
        down_at = time.monotonic()
        states: list[str] = []
        try:
            # The hub's next renewal falls inside the outage (it renews with
            # MARGIN of the 90 s left); the server's next look reports it.
            failing = sandbox.wait_until(
                lambda: (s := status())["last_error"] and s,
                timeout=LIFETIME + 30,
                interval=1,
                message="the outage reported in the job's status",
            )
            figures["kdc_down_to_error_in_status"] = round(time.monotonic() - down_at, 1)
            figures["error_in_status"] = failing["last_error"]
            assert failing["renewed_by"] == "hub"

            # The rest of the lifetime: every look reports the error, and the
            # server answers throughout.
            def one_lifetime_down() -> bool:
                seen = status()
                states.append(seen["state"])
                assert seen["last_error"], f"the error vanished from the status while the KDC was down: {seen}"
                return time.monotonic() - down_at >= LIFETIME

            sandbox.wait_until(one_lifetime_down, timeout=2 * LIFETIME, interval=1, message="one lifetime")
            figures["states_while_down"] = sorted(set(states))
            # Nothing could renew it: the job's ticket ran out, and the status says so.
            assert (seconds_left(realm, cache) or 0) <= 0
            assert states[-1] in ("expired", "error"), states[-1]
        finally:
            realm.start()
        back_at, back_wall = time.monotonic(), time.time()

        def fresh_again() -> dict[str, Any] | None:
            left = seconds_left(realm, cache)
            if left is None or left <= 0 or realm.klist(cache).expires.timestamp() <= back_wall:
                return None
            seen = status()
            return seen if seen["last_error"] is None and seen["state"] in ("valid", "expiring") else None

        # The hub backs off after failures (5 s doubling): a few doublings.
        recovered = sandbox.wait_until(
            fresh_again, timeout=3 * LIFETIME, interval=1, message="the job's ticket after the KDC returned"
        )
        figures["kdc_back_to_fresh_ticket_in_job"] = round(time.monotonic() - back_at, 1)
        assert recovered["renewed_by"] == "hub"
        seen = check_in_kernel(hub, session, user)
        assert seen["valid"] is True, seen
        assert seen["principal"] == f"{user.name}@{realm.name}"
        assert seen["job"] == server["job"]
    finally:
        keytab.unlink(missing_ok=True)
        artifacts = artifact_dir(request.node.nodeid)
        (artifacts / "timings.json").write_text(json.dumps(figures, indent=2, default=str) + "\n")
        if realm.kdc_log.exists():
            shutil.copyfile(realm.kdc_log, artifacts / "kdc.log")
        realm.close()


# -- JupyterLab's status bar in a Slurm-started server --------------------------


def test_the_status_bar_of_a_slurm_started_server_says_renewed_by_hub(
    hub_factory, slurm: SlurmCluster, broker_realm: sandbox.Realm, keytab_dir: Path, slurm_users, request
) -> None:
    """Headless Chromium logs in through the hub's form, which starts the
    server as a Slurm job; JupyterLab in that job shows the pamkrb status-bar
    item, which says the hub renews the ticket."""
    from chromium import CHROMIUM, CHROMIUM_ARGS
    from playwright.sync_api import sync_playwright
    from test_browser import Session

    user = slurm_users[0]
    config = dict(SLURM_SPAWNER_CONFIG)
    config["PAMKerberosAuthenticator.keytab_template"] = f"{keytab_dir}/{{username}}.keytab"
    # The label names the renewer only while the ticket is "valid", i.e.
    # outside the margin: a margin of a third of the lifetime leaves the
    # label two thirds of each lifetime to say it.
    config["PAMKerberosAuthenticator.refresh_margin"] = LIFETIME // 3
    hub = hub_factory(config, realm=broker_realm, extra_config=SLURM_SPAWNER_EXTRA_CONFIG)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        session = Session(browser, hub, user)
        try:
            session.log_in()
            jobs = slurm.jobs(user=user.name)
            assert list(jobs.values()) == ["RUNNING"], jobs
            page = session.page
            page.goto(f"{session.base}/lab")
            item = page.locator("#pamkrb-status")
            item.wait_for()
            # The item polls every 30 s; its first answer may predate the delivery.
            sandbox.wait_until(
                lambda: "renewed by hub" in item.inner_text(), timeout=2 * LIFETIME, interval=0.5, message="label"
            )
            assert item.inner_text().startswith("Kerberos: valid"), item.inner_text()
            figures = {"label": item.inner_text()}
            status = session.status()
            assert status["renewed_by"] == "hub"
            assert status["principal"] == f"{user.name}@{broker_realm.name}"
            artifacts = artifact_dir(request.node.nodeid)
            page.screenshot(path=str(artifacts / "slurm-renewed-by-hub.png"))
            (artifacts / "label.json").write_text(json.dumps(figures) + "\n")
            assert not [e for e in session.errors if "pamkrb" in e], session.errors
        finally:
            session.close()
            browser.close()


# -- internal_ssl: the README's recipe ------------------------------------------

# The README's recipe, verbatim: batchspawner has no move_certs of its own, so
# a job would be told the paths JupyterHub wrote the server's certificate to
# (internal_certs_location, the hub's alone, on the hub's host).
# LocalProcessSpawner's move_certs moves them into the user's home
# (~/.jupyterhub/jupyterhub-certs, the user's, 0700), which every node sees.
INTERNAL_SSL_EXTRA_CONFIG = """\
from jupyterhub.spawner import LocalProcessSpawner


class SlurmSpawnerWithCerts(batchspawner.SlurmSpawner):
    move_certs = LocalProcessSpawner.move_certs


c.JupyterHub.spawner_class = SlurmSpawnerWithCerts
c.JupyterHub.internal_ssl = True
"""

CERTS_CHECK = """
import json, os, stat
files = {name: os.environ.get(f"JUPYTERHUB_SSL_{name}") for name in ("KEYFILE", "CERTFILE", "CLIENT_CA")}
print(json.dumps({
    "api_url": os.environ.get("JUPYTERHUB_API_URL"),
    "files": files,
    "owners": sorted({os.stat(path).st_uid for path in files.values() if path}),
    "dir_mode": stat.S_IMODE(os.stat(os.path.dirname(files["KEYFILE"])).st_mode) if files["KEYFILE"] else None,
}))
"""


def test_internal_ssl_across_nodes_with_the_readmes_move_certs(
    hub_factory, slurm: SlurmCluster, broker_realm: sandbox.Realm, keytab_dir: Path, slurm_users, request
) -> None:
    """With ``internal_ssl`` and the README's ``move_certs`` for
    batchspawner, the job reads its certificate from the user's home (its
    /tmp is private, and the hub's certificate store is root's), talks to
    the hub's API over HTTPS with it, and gets its ticket that way."""
    user = slurm_users[0]
    config = dict(SLURM_SPAWNER_CONFIG)
    config["PAMKerberosAuthenticator.keytab_template"] = f"{keytab_dir}/{{username}}.keytab"
    # The sandbox pins the proxy's API to a plain-HTTP URL; with internal_ssl
    # JupyterHub starts the proxy's API with TLS.
    config["ConfigurableHTTPProxy.api_url"] = f"https://127.0.0.1:{sandbox.free_port()}"
    hub = hub_factory(config, realm=broker_realm, extra_config=SLURM_SPAWNER_EXTRA_CONFIG + INTERNAL_SSL_EXTRA_CONFIG)
    server = spawn(hub, slurm, broker_realm, user)
    seen = sandbox.run_in_server(server["session"], f"{hub.url}/user/{user.name}", CERTS_CHECK)
    assert seen["api_url"].startswith("https://"), seen
    certs = user.home / ".jupyterhub" / "jupyterhub-certs"
    assert {Path(path).parent for path in seen["files"].values()} == {certs}, seen
    assert seen["owners"] == [user.uid]
    assert seen["dir_mode"] == 0o700
    status = server["session"].get(f"{hub.url}/user/{user.name}/pamkrb/api/status", timeout=30).json()
    assert status["renewed_by"] == "hub"
    assert status["last_error"] is None, status
    assert status["state"] in ("valid", "expiring"), status
    # The ticket went out over the hub's TLS API (a plain-HTTP request would not reach it).
    assert "/hub/api/pamkrb/ticket" in hub.log_text()

    # The README's Kubernetes sidecar, one pass, run in the job with the
    # server's environment (which a kernel inherits): its curl reaches the
    # ticket API with the server's token and certificate and leaves a valid
    # cache of the user's, mode 0600, where the notebook would read it.
    fetched = sandbox.run_in_server(server["session"], f"{hub.url}/user/{user.name}", sidecar_check(user))
    assert fetched["returncode"] == 0, fetched
    assert fetched["valid"] is True, fetched
    assert fetched["principal"] == f"{user.name}@{broker_realm.name}"
    assert fetched["mode"] == 0o600
    assert fetched["leftovers"] == ["krb5cc"], fetched


def readme_sidecar_fetch() -> str:
    """The shell loop of the README's Kubernetes sidecar (its ``FETCH``), as written there."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    start = readme.index("FETCH = (")
    end = readme.index("\n)\n", start) + 3
    namespace: dict[str, Any] = {}
    exec(readme[start:end], namespace)
    return str(namespace["FETCH"])


def sidecar_check(user: sandbox.UnixUser) -> str:
    """Kernel code: one pass of the sidecar's loop into a fresh directory of the job's /tmp."""
    fetch = readme_sidecar_fetch()
    assert fetch.count("while :; do") == 1, fetch
    assert fetch.count("sleep 60; ") == 1, fetch
    once = fetch.replace("while :; do", "for pass in 1; do").replace("sleep 60; ", "")
    return f"""
import json, os, subprocess, tempfile
where = tempfile.mkdtemp(prefix="sidecar-")
command = {once!r}.replace("/krb5/", where + "/")
result = subprocess.run(["sh", "-c", command], capture_output=True, text=True)
cache = os.path.join(where, "krb5cc")
klist = subprocess.run(["klist", "-c", cache], capture_output=True, text=True)
principal = [line.split(": ", 1)[1] for line in klist.stdout.splitlines() if line.startswith("Default principal:")]
print(json.dumps({{
    "returncode": result.returncode,
    "stderr": result.stderr[-500:],
    "valid": subprocess.run(["klist", "-s", "-c", cache]).returncode == 0,
    "principal": principal[0] if principal else None,
    "mode": os.stat(cache).st_mode & 0o777 if os.path.exists(cache) else None,
    "leftovers": sorted(os.listdir(where)),
}}))
"""
