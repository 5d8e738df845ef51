"""Notebook servers started by Slurm through BatchSpawner, with the ticket broker.

A one-node Slurm cluster (tests/slurm_fixtures.py, tools/sandbox/slurm.py)
runs each server as a batch job of its user, with ``job_container/tmpfs``:
the job has a private /tmp and so shares no credential cache with the hub,
like a job on another node. The keytabs are root's alone. The hub renews the
tickets and serves them; the pamkrb server extension in the job fetches and
installs them.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import sandbox
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
