"""Slurm: a one-node cluster (munged, slurmctld, slurmd) on loopback, from Debian's packages.

Debian 12's ``slurm-wlm`` (Slurm 22.05) and ``munge`` (0.5.15), run as root
from one private directory outside ``/tmp`` (:data:`BASE_DIR`); apt starts
neither daemon (policy-rc.d), and nothing under ``/etc/slurm`` or
``/etc/munge`` is read or written. Every client (``sbatch``, ``squeue``,
``scancel``, also the ones JupyterHub's BatchSpawner runs as the user) finds
the cluster through ``SLURM_CONF`` (:meth:`SlurmCluster.env`), and the munge
socket through ``AuthInfo`` in that file. One node, ``localhost``
(127.0.0.1), one partition; ``JobContainerType=job_container/tmpfs`` gives
every job a private ``/tmp`` (and ``/dev/shm``) that is removed when the job
ends, which is what a job on another node sees of the submit host's ``/tmp``:
nothing.

Layout of :attr:`SlurmCluster.dir` (root's, 0755)::

    etc/    0755  slurm.conf, job_container.conf, plugstack.conf (users' clients read them)
    run/    0755  the munge socket (every user's client talks to it)
    munge/  0700  munge.key, munged's PID, seed and log
    state/  0700  slurmctld's StateSaveLocation (job scripts and environments: tokens)
    spool/  0755  slurmd's SlurmdSpoolDir (step sockets)
    log/    0700  slurmctld.log, slurmd.log
    jobs/   0700  job_container/tmpfs BasePath: jobs/localhost/<id>/.<id> is job <id>'s /tmp

Every trap met on the way, and its fix (each one was hit or checked here):

- **munged checks its socket directory**: "Socket is inaccessible: execute
  permissions for all required" for a 0700 directory, yet the key's directory
  must not be open to others. Fix: the socket in ``run/`` (0755), the key in
  ``munge/`` (0700). munged runs as root here, which it accepts.
- **``job_container/tmpfs`` needs ``PrologFlags=Contain``**: without it
  slurmctld exits at once ("fatal: PrologFlags=Contain is required for use
  with job_container/tmpfs"), with nothing in its log file (it goes to
  ``log/slurmctld.out``).
- **Debian's Slurm is built with ``--enable-multiple-slurmd``**: the tmpfs
  plugin puts each job under ``BasePath/<node name>/<job id>`` and does not
  create the node level; without it every job fails at launch ("_create_ns:
  mkdir .../jobs/localhost/1 failed: No such file or directory", the job is
  requeued and held). Fix: ``jobs/localhost`` is made here. The job's /tmp
  is a bind mount of ``jobs/localhost/<id>/.<id>`` (a directory on the host's
  file system, not a tmpfs), so root on the host can look into it.
- **A job cannot see the host's ``/tmp``**: slurm.conf, the munge socket,
  slurmd's spool and any Python a job runs must live elsewhere (here
  ``/var/tmp``; JupyterHub's venv is under ``/opt``). The plugin refuses a
  BasePath under ``/tmp`` anyway: slurmd exits with "fatal: Cannot use /tmp
  or /dev/shm as BasePath"; :class:`SlurmCluster` refuses such a base_dir
  itself.
- **Clients need ``SLURM_CONF``**: Debian's compiled-in default is
  ``/etc/slurm/slurm.conf``, which this module never writes. The hub that
  runs ``sbatch`` must have it in its own environment (``squeue`` and
  ``scancel`` inherit the hub's) and pass it on to the job
  (``Spawner.env_keep``), where ``srun`` needs it too.
- **A job outlives slurmd**: after slurmd's SIGTERM the job's ``extern``
  slurmstepd and its /tmp mounts (``jobs/localhost/<id>``, ``.../.ns``) were
  still there. :meth:`SlurmCluster.stop` therefore cancels every job and
  waits until slurmd's spool has no step socket and ``jobs/localhost`` no
  job directory before it stops the daemons; :meth:`close` then kills any
  slurmstepd of this cluster (found by ``SLURM_CONF`` in its environment)
  and unmounts whatever is left under :attr:`dir` before deleting it.
- The first job after a start waits for the scheduler's first pass, about
  3 s after slurmctld starts; later ones start within a second.
- slurmd logs "mpi/pmix: can not load PMIx library" errors: Debian's plugin
  lacks its library; harmless with ``MpiDefault=none``.

Choices that are not traps (checked to work either way here):
``slurmd -N localhost`` pins the node name, though this host's name (``vm``)
resolves to 127.0.0.1, whose first name is ``localhost``, so slurmd finds
its node without it; ``SlurmctldHost`` is ``localhost(127.0.0.1)``, which
slurmctld accepts whatever the host is called. ``proctrack/linuxproc`` and
``task/none`` (the cgroup plugins also start here; linuxproc tracks a job's
processes by parentage, enough for a server and its kernels, and needs no
cgroup set-up). ``ReturnToService=2`` and a cold start (``-c``) so nothing of
an earlier run is resumed. Accounting off (no slurmdbd, no database).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .process import SandboxError, _run, _Service, _terminate, free_port, port_accepts, wait_until

# Outside /tmp: job_container/tmpfs hides the host's /tmp from jobs and
# refuses a BasePath under it.
BASE_DIR = Path("/var/tmp")
NODE = "localhost"
PARTITION = "debug"
# Sub-directories of the cluster's directory and their modes (see the layout above).
_LAYOUT = {"etc": 0o755, "run": 0o755, "munge": 0o700, "state": 0o700, "spool": 0o755, "log": 0o700, "jobs": 0o700}


class SlurmCluster(_Service):
    """munged, slurmctld and slurmd on loopback, one node, private ``/tmp`` per job.

    Started by :meth:`start` (0.1-0.3 s here), stopped by :meth:`stop` (every job
    cancelled first), removed by :meth:`close`. Usable as a context manager.
    """

    def __init__(self, *, base_dir: Path = BASE_DIR, cluster_name: str = "pamkrb") -> None:
        if Path("/tmp") in Path(base_dir).resolve().parents or Path(base_dir).resolve() == Path("/tmp"):
            raise SandboxError(f"{base_dir} is under /tmp, which Slurm jobs cannot see: use e.g. /var/tmp")
        self.cluster_name = cluster_name
        self.dir = Path(tempfile.mkdtemp(prefix="pamkrb-slurm-", dir=base_dir))
        self.dir.chmod(0o755)
        for name, mode in _LAYOUT.items():
            (self.dir / name).mkdir()
            (self.dir / name).chmod(mode)
        (self.dir / "jobs" / NODE).mkdir(mode=0o700)
        self.conf = self.dir / "etc" / "slurm.conf"
        self.munge_key = self.dir / "munge" / "munge.key"
        self.munge_socket = self.dir / "run" / "munge.socket"
        # Debian builds Slurm with --enable-multiple-slurmd: the plugin puts
        # each job under BasePath/<node name>/ and does not create that level.
        self.job_base = self.dir / "jobs" / NODE
        self.spool = self.dir / "spool"
        self.ctld_log = self.dir / "log" / "slurmctld.log"
        self.slurmd_log = self.dir / "log" / "slurmd.log"
        self.ctld_port = free_port()
        self.slurmd_port = free_port()
        self._munged: subprocess.Popen[bytes] | None = None
        self._ctld: subprocess.Popen[bytes] | None = None
        self._slurmd: subprocess.Popen[bytes] | None = None
        self._proc = None  # _Service's single process: unused, three are kept above
        self.started_in: float | None = None
        self._write_key()
        self._write_config()

    # -- configuration -------------------------------------------------------

    def _write_key(self) -> None:
        fd = os.open(self.munge_key, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, secrets.token_bytes(128))
        finally:
            os.close(fd)

    def _write_config(self) -> None:
        d = self.dir
        cpus = os.cpu_count() or 1
        self.conf.write_text(
            f"""\
# Written by tools/sandbox/slurm.py; removed with its directory.
ClusterName={self.cluster_name}
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={self.ctld_port}
SlurmdPort={self.slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
StateSaveLocation={d / "state"}
SlurmdSpoolDir={self.spool}
SlurmctldPidFile={d / "state" / "slurmctld.pid"}
SlurmdPidFile={self.spool / "slurmd.pid"}
SlurmctldLogFile={self.ctld_log}
SlurmdLogFile={self.slurmd_log}
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig={d / "etc" / "plugstack.conf"}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobContainerType=job_container/tmpfs
PrologFlags=Contain
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
KillWait=5
InactiveLimit=0
MinJobAge=30
NodeName={NODE} NodeAddr=127.0.0.1 NodeHostname={NODE} CPUs={cpus} State=UNKNOWN
PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP
"""
        )
        (d / "etc" / "job_container.conf").write_text(f"AutoBasePath=true\nBasePath={self.dir / 'jobs'}\n")
        (d / "etc" / "plugstack.conf").write_text("")
        for name in ("slurm.conf", "job_container.conf", "plugstack.conf"):
            (d / "etc" / name).chmod(0o644)

    def env(self) -> dict[str, str]:
        """What a Slurm client (sbatch, squeue, scancel, srun) needs in its environment."""
        return {"SLURM_CONF": str(self.conf)}

    def client_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM")}
        env.update(self.env())
        env["LC_ALL"] = "C"
        env.update(extra or {})
        return env

    # -- the daemons -----------------------------------------------------------

    @property
    def running(self) -> bool:
        procs = (self._munged, self._ctld, self._slurmd)
        return all(p is not None and p.poll() is None for p in procs)

    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen[bytes]:
        # Foreground daemons (-F / -D) so the PID we stop is the one we started;
        # their own session keeps a terminal's Ctrl-C away from them.
        with (self.dir / "log" / log_name).open("ab") as log:
            return subprocess.Popen(
                args,
                env=self.client_env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _check_alive(self, proc: subprocess.Popen[bytes] | None, name: str, log: Path) -> None:
        if proc is not None and proc.poll() is not None:
            raise SandboxError(f"{name} exited with {proc.returncode}; log {log}:\n{self._tail(log)}")

    @staticmethod
    def _tail(path: Path, lines: int = 30) -> str:
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return f"(no {path.name})"

    def start(self, timeout: float = 30) -> None:
        """Start munged, slurmctld and slurmd; wait until the node is idle."""
        if self.running:
            return
        begun = time.monotonic()
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - begun

    def _start(self, timeout: float) -> None:
        m = self.dir / "munge"
        self._munged = self._spawn(
            [
                "munged",
                "--foreground",
                f"--socket={self.munge_socket}",
                f"--key-file={self.munge_key}",
                f"--pid-file={m / 'munged.pid'}",
                f"--seed-file={m / 'munged.seed'}",
                f"--log-file={m / 'munged.log'}",
            ],
            "munged.out",
        )

        def munge_ready() -> bool:
            self._check_alive(self._munged, "munged", m / "munged.log")
            return self.munge_socket.exists()

        wait_until(munge_ready, timeout=timeout, message="munged's socket")

        # -c: a cold start, nothing of an earlier run is resumed; -i: ignore
        # unreadable state rather than refuse to start.
        self._ctld = self._spawn(["slurmctld", "-D", "-c", "-i", "-f", str(self.conf)], "slurmctld.out")

        def ctld_ready() -> bool:
            self._check_alive(self._ctld, "slurmctld", self.ctld_log)
            return port_accepts(self.ctld_port)

        wait_until(ctld_ready, timeout=timeout, message=f"slurmctld on port {self.ctld_port}")

        self._slurmd = self._spawn(["slurmd", "-D", "-N", NODE, "-f", str(self.conf)], "slurmd.out")

        def node_idle() -> bool:
            self._check_alive(self._slurmd, "slurmd", self.slurmd_log)
            self._check_alive(self._ctld, "slurmctld", self.ctld_log)
            return self.node_state().startswith("IDLE")

        wait_until(node_idle, timeout=timeout, interval=0.1, message=f"Slurm node {NODE} to be idle")

    def stop(self) -> None:
        """Cancel every job, wait for their steps and private /tmp to go, then
        stop slurmd, slurmctld and munged by PID. Safe to call twice."""
        if self._ctld is not None and self._ctld.poll() is None and self._slurmd is not None:
            with contextlib.suppress(SandboxError):
                self.cancel_all()
        for proc in (self._slurmd, self._ctld, self._munged):
            if proc is not None:
                _terminate(proc)
        self._slurmd = self._ctld = self._munged = None

    def close(self) -> None:
        """Stop everything and delete the directory, unmounting any job /tmp
        an interrupted run left behind first."""
        self.stop()
        self._kill_leftover_steps()
        for mount in reversed(self.mounts()):
            subprocess.run(["umount", "--lazy", mount], capture_output=True, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def mounts(self) -> list[str]:
        """Mount points under this cluster's directory (job /tmp, namespaces)."""
        found = []
        prefix = str(self.dir) + "/"
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if point.startswith(prefix):
                found.append(point)
        return found

    def _step_daemons(self) -> list[int]:
        """PIDs of slurmstepd processes of this cluster (their environment names our slurm.conf)."""
        marker = f"SLURM_CONF={self.conf}".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if not os.readlink(entry / "exe").startswith("/usr/sbin/slurmstepd"):
                    continue
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
        return found

    def _kill_leftover_steps(self) -> None:
        for pid in self._step_daemons():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    # -- clients ------------------------------------------------------------------

    def command(
        self,
        args: list[str],
        *,
        user: Any = None,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 30,
    ) -> subprocess.CompletedProcess[str]:
        """Run a Slurm client (no shell), as root or as ``user`` (a UnixUser),
        with this cluster's SLURM_CONF and ``env`` added to this process's environment."""
        options: dict[str, Any] = {}
        extra: dict[str, str] = {}
        if user is not None:
            options = {"user": user.uid, "group": user.gid, "extra_groups": [], "cwd": user.home}
            extra = {"HOME": str(user.home), "USER": user.name, "LOGNAME": user.name}
        extra.update(env or {})
        return subprocess.run(
            args,
            env=self.client_env(extra),
            input=input,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            **options,
        )

    def node_state(self) -> str:
        """The node's state as sinfo prints it (IDLE, MIXED, ALLOCATED, DOWN*...), or ""."""
        result = self.command(["sinfo", "-h", "-N", "-n", NODE, "-o", "%T"])
        return result.stdout.strip().upper() if result.returncode == 0 else ""

    def submit(
        self, script: str, *, user: Any = None, options: tuple[str, ...] = (), env: Mapping[str, str] | None = None
    ) -> str:
        """``sbatch --parsable`` with ``script`` on stdin; the job id."""
        result = self.command(["sbatch", "--parsable", *options], user=user, input=script, env=env)
        if result.returncode != 0:
            raise SandboxError(f"sbatch exited with {result.returncode}: {result.stderr.strip()}")
        return result.stdout.strip().split(";")[0]

    def jobs(self, user: str | None = None) -> dict[str, str]:
        """Every job (of ``user``, if given) that slurmctld still lists as
        pending, running or completing: id → state."""
        result = _run(["squeue", "-h", "-o", "%i %T", *(["-u", user] if user else [])], env=self.client_env())
        return dict(line.split(None, 1) for line in result.stdout.splitlines() if line.strip())

    def job_state(self, job_id: str) -> str | None:
        """A job's state, or None once slurmctld no longer lists it."""
        return self.jobs().get(str(job_id))

    def job_tmp(self, job_id: str) -> Path:
        """Where job ``job_id``'s private /tmp lives on the host (while it runs)."""
        return self.job_base / str(job_id) / f".{job_id}"

    def job_dirs(self) -> list[str]:
        try:
            return sorted(p.name for p in self.job_base.iterdir())
        except FileNotFoundError:
            return []

    def step_sockets(self) -> list[str]:
        """slurmd's per-step sockets (``<node>_<job>.<step>``): one per live step."""
        try:
            return sorted(p.name for p in self.spool.iterdir() if p.name.startswith(f"{NODE}_"))
        except FileNotFoundError:
            return []

    def wait_job_gone(self, job_id: str, timeout: float = 30) -> None:
        """Until the job is not listed, its steps have ended and its private /tmp is removed."""
        job_id = str(job_id)

        def gone() -> bool:
            return (
                self.job_state(job_id) in (None, "COMPLETED", "CANCELLED", "FAILED", "TIMEOUT")
                and not any(s.startswith(f"{NODE}_{job_id}.") for s in self.step_sockets())
                and job_id not in self.job_dirs()
            )

        wait_until(gone, timeout=timeout, interval=0.1, message=f"Slurm job {job_id} to end")

    def cancel_all(self, timeout: float = 30) -> None:
        """scancel every job; wait until no step runs and no job /tmp is left."""
        ids = list(self.jobs())
        if ids:
            _run(["scancel", *ids], env=self.client_env())
        wait_until(
            lambda: not self.step_sockets() and not self.job_dirs() and not self.jobs(),
            timeout=timeout,
            interval=0.1,
            message="every Slurm job to end",
        )

    def log_tail(self, lines: int = 30) -> str:
        return f"slurmctld:\n{self._tail(self.ctld_log, lines)}\nslurmd:\n{self._tail(self.slurmd_log, lines)}"
