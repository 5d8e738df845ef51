"""The session's one Kerberos-secured HDFS, shared by every Hadoop test module.

A test module uses it with ``pytest_plugins = ["hadoop_fixtures"]``. A plugin
is registered once per session, whichever modules name it, so every module
gets the same realm and the same cluster. Importing the fixture functions
into each module instead would give each module a fixture of its own, and so
a cluster of its own (pytest caches a session fixture per definition site).

- ``hadoop_realm``: the KDC of realm ``HADOOP.TEST`` (services and users);
  not exported to this process's KRB5_CONFIG (the session ``realm`` is).
- ``hdfs``: the :class:`sandbox.hadoop.HadoopCluster` in that realm, started
  once; its logs and start-up figures go to test-artifacts/hadoop/.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest

import sandbox
from conftest import ARTIFACTS, require_root
from sandbox.hadoop import HadoopCluster

HADOOP_REALM = "HADOOP.TEST"


@pytest.fixture(scope="session")
def hadoop_realm() -> Iterator[sandbox.Realm]:
    """A KDC of its own for the cluster's service principals and its users.

    Not exported to this process's KRB5_CONFIG: the session ``realm`` is.
    """
    require_root()
    realm = sandbox.Realm(HADOOP_REALM)
    try:
        realm.start()
        yield realm
    finally:
        realm.close()


@pytest.fixture(scope="session")
def hdfs(hadoop_realm: sandbox.Realm) -> Iterator[HadoopCluster]:
    """One secured HDFS for the whole session; its logs and start-up figures
    are copied to test-artifacts/hadoop/ at the end."""
    cluster = HadoopCluster(hadoop_realm)
    artifacts = ARTIFACTS / "hadoop"
    figures: dict[str, Any] = {}
    try:
        began = time.monotonic()
        cluster.start()
        figures["start_seconds"] = round(time.monotonic() - began, 2)
        figures["resident_bytes_at_start"] = cluster.resident_memory()
        yield cluster
        figures["resident_bytes_at_end"] = cluster.resident_memory()
    finally:
        cluster.stop()
        artifacts.mkdir(parents=True, exist_ok=True)
        for log in (cluster.format_log, cluster.namenode_log, cluster.datanode_log):
            if log.exists():
                shutil.copyfile(log, artifacts / log.name)
        if figures:
            (artifacts / "figures.json").write_text(json.dumps(figures, indent=2) + "\n")
        cluster.close()
