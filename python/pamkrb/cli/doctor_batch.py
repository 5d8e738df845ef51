"""``pamkrb doctor``'s check of servers started as batch jobs (batchspawner).

JupyterHub hands a spawner almost none of its own environment
(``Spawner.env_keep`` is only ``JUPYTERHUB_SINGLEUSER_APP``).
LocalProcessSpawner adds ``PATH`` itself; batchspawner's Slurm, Torque, PBS,
Condor and LSF spawners do not, and the job inherits what the spawner
passes to the submit command, nothing else. Without ``PATH`` the job cannot
find ``batchspawner-singleuser`` (Slurm's ``srun``: "execve(): No such file
or directory") and the server never starts; without ``SLURM_CONF`` or
``KRB5_CONFIG`` where the hub's own environment needs them, ``srun`` finds
no cluster and libkrb5 in the job no realm. This is checked from the
configuration alone: doctor runs nothing on the cluster.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from traitlets.config import Config

    from ..authenticator import PAMKerberosAuthenticator
    from .doctor import Report

TITLE = "batch job environment"
# The spawner classes batchspawner defines; a site's subclass is recognised
# by one of these names in its MRO.
BATCH_BASE = "BatchSpawnerBase"
# GridengineSpawner copies PATH (and SGE_*) from the hub's environment itself.
ADDS_PATH = frozenset({"GridengineSpawner"})
# Variables the job needs when the hub's own environment sets them: which
# batch system's spawners use each (None: every one).
NEEDED_WHEN_SET: dict[str, frozenset[str] | None] = {
    "SLURM_CONF": frozenset({"SlurmSpawner"}),
    "KRB5_CONFIG": None,
}


def spawner_class_names(config: Config) -> list[str]:
    """The names in the MRO of the configured ``JupyterHub.spawner_class``,
    most general first, as traitlets applies config sections; [] when it is
    JupyterHub's default or cannot be imported (then it is no batchspawner
    class doctor can judge)."""
    from traitlets.utils.importstring import import_item

    chosen = config.JupyterHub.get("spawner_class") if "JupyterHub" in config else None
    if isinstance(chosen, str) and "." in chosen:
        try:
            chosen = import_item(chosen)
        except Exception:  # an unimportable class is the hub's to report, at its start-up
            return []
    if not isinstance(chosen, type):
        return []
    return [cls.__name__ for cls in reversed(chosen.__mro__)]


def effective(config: Config, sections: Iterable[str], trait: str, initial: Any) -> Any:
    """A trait's value as a configurable with these sections would get it:
    later (more specific) sections win; ``.append``/``.extend``/``.update``
    written in the config apply to the value before them."""
    from traitlets.config.loader import LazyConfigValue

    value = initial
    for section in sections:
        if section in config and trait in config[section]:
            setting = config[section][trait]
            value = setting.get_value(value) if isinstance(setting, LazyConfigValue) else setting
    return value


def check_batch_job_environment(
    config: Config,
    authenticator: PAMKerberosAuthenticator,
    report: Report,
    environ: dict[str, str] | None = None,
) -> None:
    """With a batchspawner class configured, whether the job gets the
    environment it needs (``environ``: the hub's, by default doctor's own,
    which is why doctor is run with the hub's KRB5_CONFIG); and, with the
    ticket broker on, whether the ticket can reach a job on another node."""
    names = spawner_class_names(config)
    if BATCH_BASE not in names:
        return
    environ = dict(os.environ) if environ is None else environ
    spawner = names[-1]
    keep = set(effective(config, names, "env_keep", ["JUPYTERHUB_SINGLEUSER_APP"]))
    given = set(effective(config, names, "environment", {}))
    passed = keep | given

    missing = []
    if "PATH" not in passed and not ADDS_PATH.intersection(names):
        missing.append("PATH")
    for variable, spawners in NEEDED_WHEN_SET.items():
        if variable in environ and variable not in passed and (spawners is None or spawners.intersection(names)):
            missing.append(variable)
    if missing:
        why = {
            "PATH": "the job cannot find batchspawner-singleuser and the server never starts",
            "SLURM_CONF": f"srun in the job does not find the cluster at {environ.get('SLURM_CONF')}",
            "KRB5_CONFIG": f"libkrb5 in the job reads /etc/krb5.conf, not {environ.get('KRB5_CONFIG')}",
        }
        report.warn(
            TITLE,
            f"{spawner} passes the job only Spawner.env_keep and Spawner.environment, and they lack "
            + "; ".join(f"{name} ({why[name]})" for name in missing),
            f"c.Spawner.env_keep.extend({missing!r})",
        )
    else:
        report.ok(TITLE, f"{spawner} passes {', '.join(sorted(passed & {'PATH', *NEEDED_WHEN_SET}))} to the job")

    if authenticator.ticket_broker and not effective(config, ["JupyterHub"], "internal_ssl", False):
        if authenticator.allow_insecure_ticket_delivery:
            report.warn(
                "ticket delivery to jobs",
                "internal_ssl is off and allow_insecure_ticket_delivery on: a job on another node gets its "
                "ticket in clear text over the network",
                "c.JupyterHub.internal_ssl = True (see the README: internal_ssl for batch jobs)",
            )
        else:
            report.warn(
                "ticket delivery to jobs",
                "internal_ssl is off: the broker refuses to send a ticket in clear text to a non-loopback "
                "address, so a job on another node than the hub gets none (jobs on the hub's host do)",
                "c.JupyterHub.internal_ssl = True (see the README: internal_ssl for batch jobs)",
            )
