"""Fidelity: the real gcloud reads the TPU quota from the simulated Cloud Quotas API as from
Google's: refused while the API is disabled (gcloud recognises Google's SERVICE_DISABLED error),
served once `gcloud services enable` turned it on; gcloud's own credentials need no quota
project. Skipped where gcloud (or its beta component) is absent."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

GCLOUD = shutil.which("gcloud")

pytestmark = [pytest.mark.gcloud, pytest.mark.skipif(GCLOUD is None, reason="gcloud is not installed")]

DESCRIBE = ("beta", "quotas", "info", "describe", "TPUS-PER-TPU-FAMILY-per-project-region",
            "--service=compute.googleapis.com")


def gcloud(world, tmp_path, *args) -> subprocess.CompletedProcess:
    env = dict(os.environ, CLOUDSDK_CONFIG=world.endpoints["gcloud_config"], HOME=str(tmp_path),
               CLOUDSDK_CORE_DISABLE_PROMPTS="1")
    return subprocess.run([GCLOUD, *args, f"--project={world.endpoints['project']}"], env=env,
                          capture_output=True, text=True, timeout=120)


def _need_beta(world, tmp_path) -> None:
    if gcloud(world, tmp_path, "beta", "quotas", "info", "--help").returncode != 0:
        pytest.skip("the gcloud beta component (gcloud beta quotas) is not installed")


def test_gcloud_reads_the_quota_once_the_cloud_quotas_api_is_enabled(make_sim_world, tmp_path):
    w = make_sim_world("quotas-api-disabled")
    _need_beta(w, tmp_path)
    r = gcloud(w, tmp_path, *DESCRIBE)
    assert r.returncode != 0 and "cloudquotas.googleapis.com" in r.stderr
    assert gcloud(w, tmp_path, "services", "enable", "cloudquotas.googleapis.com").returncode == 0
    r = gcloud(w, tmp_path, *DESCRIBE, "--format=value(quotaId)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "TPUS-PER-TPU-FAMILY-per-project-region"


def test_gcloud_needs_no_quota_project_where_the_wizard_does(make_sim_world, tmp_path):
    w = make_sim_world("adc-no-quota-project")
    _need_beta(w, tmp_path)
    assert gcloud(w, tmp_path, "services", "list").returncode == 0
    assert gcloud(w, tmp_path, *DESCRIBE, "--format=value(quotaId)").returncode == 0
