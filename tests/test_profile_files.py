"""The cluster CA the Kubernetes client needs as a file does not outlive the profile."""

from __future__ import annotations

import base64
import gc
import os

from rhaii_tui.cloud.profile import ClusterAccess, SimProfile


def test_ca_file_is_removed_with_its_profile(sim_world):
    ca = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nnot-a-secret\n-----END CERTIFICATE-----\n").decode()
    profile = SimProfile(sim_world.endpoints_file)
    cfg = profile.kube_configuration(ClusterAccess(endpoint="127.0.0.1:1", ca_cert_b64=ca))
    path = cfg.ssl_ca_cert
    assert path and os.path.exists(path) and oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert profile.kube_configuration(ClusterAccess(endpoint="127.0.0.1:1", ca_cert_b64=ca)).ssl_ca_cert == path
    del profile, cfg
    gc.collect()
    assert not os.path.exists(path)
