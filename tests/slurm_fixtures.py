"""The session's one-node Slurm cluster, shared by every Slurm test module.

A test module uses it with ``pytest_plugins = ["slurm_fixtures"]`` (one
plugin per session, so one cluster, as in ``hadoop_fixtures``).

- ``slurm``: a :class:`sandbox.slurm.SlurmCluster` (munged, slurmctld, slurmd
  on loopback, ``job_container/tmpfs``), started once. ``SLURM_CONF`` is
  exported to this process for the session, as the session ``realm`` exports
  ``KRB5_CONFIG``: hubs started by the tests inherit it, and BatchSpawner's
  ``squeue``/``scancel`` run with the hub's own environment. At the end every
  job is cancelled, the daemons stopped by PID, the directory removed; the
  logs and the start-up time go to test-artifacts/slurm/.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator

import pytest

from conftest import ARTIFACTS, require_root
from sandbox.slurm import SlurmCluster

SLURM_TOOLS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel")


@pytest.fixture(scope="session")
def slurm() -> Iterator[SlurmCluster]:
    require_root()
    missing = [tool for tool in SLURM_TOOLS if shutil.which(tool, path="/usr/sbin:/usr/bin") is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: apt-get install slurm-wlm munge (make setup does)")
    cluster = SlurmCluster()
    saved = os.environ.get("SLURM_CONF")
    artifacts = ARTIFACTS / "slurm"
    try:
        cluster.start()
        os.environ.update(cluster.env())
        yield cluster
    finally:
        if saved is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = saved
        try:
            cluster.stop()
        finally:
            artifacts.mkdir(parents=True, exist_ok=True)
            for log in (cluster.ctld_log, cluster.slurmd_log):
                if log.exists():
                    shutil.copyfile(log, artifacts / log.name)
            if cluster.started_in is not None:
                figures = {"start_seconds": round(cluster.started_in, 3)}
                (artifacts / "figures.json").write_text(json.dumps(figures, indent=2) + "\n")
            cluster.close()
