"""`pamkrb doctor` on a hub whose servers are batch jobs (batchspawner).

The installed command runs as a subprocess with the test realm's
KRB5_CONFIG (and a SLURM_CONF, as the hub of tests/test_slurm_spawner.py
has), against a config file written the way a site writes one. What the
job's environment lacks is a ! line whose fix, appended to the config as
printed, makes it a ✓ line.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from test_cli_doctor import give_ticket

import sandbox

SLURM_CONF = "/etc/slurm-site/slurm.conf"  # only its presence in the environment matters


def write_config(directory: Path, pam_service: str, *lines: str) -> Path:
    path = directory / "jupyterhub_config.py"
    head = [
        "c = get_config()  # noqa: F821",
        'c.JupyterHub.authenticator_class = "pamkrb"',
        f"c.PAMKerberosAuthenticator.service = {pam_service!r}",
    ]
    path.write_text("\n".join([*head, *lines]) + "\n")
    return path


def doctor(realm: sandbox.Realm, user: sandbox.UnixUser, config: Path) -> subprocess.CompletedProcess[str]:
    """Doctor for a user whose every link is sound (a fresh cache of theirs),
    so that any ! or ✗ line is about the config under test."""
    if not user.default_ccache.exists():
        give_ticket(realm, user)
    env = {**realm.client_env(), "SLURM_CONF": SLURM_CONF}
    result = sandbox.run_pamkrb(["doctor", user.name, "--config", str(config)], env=env)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def lines_about(result: subprocess.CompletedProcess[str], title: str) -> list[str]:
    """The report's line on ``title`` and its fix line, if any."""
    out = result.stdout.splitlines()
    found = []
    for i, line in enumerate(out):
        if line[2:].startswith(title):
            found.append(line)
            if i + 1 < len(out) and out[i + 1].startswith("    fix: "):
                found.append(out[i + 1])
    return found


def test_a_slurm_job_without_path_is_warned_and_the_printed_fix_cures_it(
    tmp_path: Path, realm: sandbox.Realm, user: sandbox.UnixUser, pam_service: str
) -> None:
    config = write_config(
        tmp_path,
        pam_service,
        'c.JupyterHub.spawner_class = "batchspawner.SlurmSpawner"',
        "c.PAMKerberosAuthenticator.ticket_broker = True",
        'c.Spawner.env_keep.append("LANG")',
    )
    result = doctor(realm, user, config)
    assert result.returncode == 0, result.stdout  # a risk, not a broken link: the login works
    warned = lines_about(result, "batch job environment")
    assert len(warned) == 2, result.stdout
    assert warned[0].startswith("!"), result.stdout
    for name in ("SlurmSpawner", "PATH", "SLURM_CONF", "KRB5_CONFIG", "batchspawner-singleuser"):
        assert name in warned[0], warned
    fix = warned[1].removeprefix("    fix: ")
    assert fix == "c.Spawner.env_keep.extend(['PATH', 'SLURM_CONF', 'KRB5_CONFIG'])"
    # Across nodes the broker needs internal_ssl.
    delivery = lines_about(result, "ticket delivery to jobs")
    assert delivery, result.stdout
    assert delivery[0].startswith("!"), result.stdout
    assert "internal_ssl is off" in delivery[0], result.stdout

    with config.open("a") as f:
        f.write(fix + "\nc.JupyterHub.internal_ssl = True\n")
    result = doctor(realm, user, config)
    assert result.returncode == 0, result.stdout
    ok = lines_about(result, "batch job environment")
    assert ok == ["✓ batch job environment: SlurmSpawner passes KRB5_CONFIG, PATH, SLURM_CONF to the job"], ok
    assert lines_about(result, "ticket delivery to jobs") == []


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        # The section of the class itself wins over Spawner's, as in traitlets.
        (
            [
                'c.JupyterHub.spawner_class = "batchspawner.SlurmSpawner"',
                'c.Spawner.env_keep = ["PATH", "SLURM_CONF", "KRB5_CONFIG"]',
                'c.SlurmSpawner.env_keep = ["LANG"]',
            ],
            "! batch job environment",
        ),
        # PATH given outright rather than kept; a torque site needs no SLURM_CONF.
        (
            [
                'c.JupyterHub.spawner_class = "batchspawner.TorqueSpawner"',
                'c.Spawner.environment = {"PATH": "/opt/jupyter/bin:/usr/bin:/bin"}',
                'c.Spawner.env_keep.append("KRB5_CONFIG")',
            ],
            "✓ batch job environment: TorqueSpawner passes KRB5_CONFIG, PATH to the job",
        ),
        # Gridengine's spawner copies PATH from the hub's environment itself.
        (
            [
                'c.JupyterHub.spawner_class = "batchspawner.GridengineSpawner"',
                'c.Spawner.env_keep.append("KRB5_CONFIG")',
            ],
            "✓ batch job environment: GridengineSpawner passes KRB5_CONFIG to the job",
        ),
        # Not a batch spawner: nothing to say.
        (['c.JupyterHub.spawner_class = "jupyterhub.spawner.LocalProcessSpawner"'], None),
    ],
    ids=["class-section-wins", "path-in-environment", "gridengine", "local-process"],
)
def test_the_job_environment_is_judged_as_jupyterhub_builds_it(
    tmp_path: Path,
    realm: sandbox.Realm,
    user: sandbox.UnixUser,
    pam_service: str,
    settings: list[str],
    expected: str | None,
) -> None:
    result = doctor(realm, user, write_config(tmp_path, pam_service, *settings))
    assert result.returncode == 0, result.stdout
    found = lines_about(result, "batch job environment")
    if expected is None:
        assert found == [], result.stdout
    else:
        assert found, result.stdout
        assert found[0].startswith(expected), result.stdout
    # The broker is off: no word on ticket delivery.
    assert lines_about(result, "ticket delivery to jobs") == []
