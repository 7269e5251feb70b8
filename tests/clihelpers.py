"""Shared by the headless-CLI tests: a clean environment per test, and `rhaii-tui --sim ...` run
in-process against a simulated world.

    from clihelpers import clean_env, run  # noqa: F401 - clean_env is an autouse fixture
"""

from __future__ import annotations

import pytest

from rhaii_tui import cli


@pytest.fixture(autouse=True)
def clean_env(tmp_path, monkeypatch):
    """Each test: its own state dir, no target or secrets from the caller's environment."""
    monkeypatch.setenv("RHAII_TUI_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud"))
    for name in ("PROJECT_ID", "ZONE", "CLUSTER_NAME", "NAMESPACE", "HF_TOKEN", "REGISTRY_PASSWORD",
                 "CLOUDSDK_CORE_PROJECT"):
        monkeypatch.delenv(name, raising=False)


def run(capsys, world, *argv: str) -> tuple[int, str, str]:
    """`rhaii-tui --sim --sim-state <world> ARGV...` in-process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    try:
        code = cli.main(["--sim", "--sim-state", str(world.state_dir), *argv])
    except SystemExit as e:  # argparse refusing a flag exits (2)
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err
