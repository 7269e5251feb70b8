"""The simulated world: persistence and resume, the files it writes for clients, scenarios, and the
`--sim` launcher (ensure_world) with a real background process."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import time

import pytest
from google.cloud import container_v1

from rhaii_tui.sim import names
from rhaii_tui.sim.scenarios import SCENARIOS, get_scenario
from rhaii_tui.sim.testing import run_world
from rhaii_tui.sim.world import WorldError

PROJECT = "rhaii-demo-project"
ZONE = "europe-west4-a"
PARENT = f"projects/{PROJECT}/locations/{ZONE}"
KEY = f"{PROJECT}/{ZONE}/c1"


def _create(gke, name="c1"):
    return gke.create_cluster(request={"parent": PARENT, "cluster": {"name": name, "node_pools": [
        {"name": "default-pool", "initial_node_count": 2, "config": {"machine_type": "n1-standard-4"}}]}})


def _tpu_pool(gke, cluster="c1"):
    return gke.create_node_pool(request={"parent": f"{PARENT}/clusters/{cluster}", "node_pool": {
        "name": "tpu-pool", "initial_node_count": 3, "config": {"machine_type": "ct6e-standard-4t"}}})


def _wait_done(gke, op, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        op = gke.get_operation(request={"name": f"{PARENT}/operations/{op.name}"})
        if op.status == container_v1.Operation.Status.DONE:
            return op
        assert time.monotonic() < deadline
        time.sleep(0.02)


def _nodes(w, label):
    sim = w.sim()
    return w.call(lambda: sim.store.list(sim.store.type_for("nodes"), label_selector=label)[0])


def test_scenario_names_match_the_cli_list():
    assert tuple(SCENARIOS) == names.SCENARIOS
    for name in names.SCENARIOS:
        sc = get_scenario(name)
        assert sc.name == name and sc.description
    with pytest.raises(ValueError, match="unknown scenario"):
        get_scenario("nope")
    with pytest.raises(ValueError, match="unknown scenario knob"):
        get_scenario("fresh", quota=3)


def test_files_for_clients(sim_world):
    ep = sim_world.endpoints
    assert ep["pid"] == os.getpid() and ep["scenario"] == "fresh" and ep["project"] == PROJECT
    assert ep["google_api"].startswith("http://127.0.0.1:") and ep["control"] == ep["google_api"] + "/_emu"
    assert stat.S_IMODE(os.stat(sim_world.endpoints_file).st_mode) == 0o600
    gdir = sim_world.state_dir / "gcloud"
    assert ep["gcloud_config"] == str(gdir)
    ini = (gdir / "configurations" / "config_default").read_text()
    assert f"container = {ep['google_api']}/" in ini and f"project = {PROJECT}" in ini
    assert f"access_token_file = {gdir / 'token'}" in ini
    assert (gdir / "token").read_text() == ep["token"]
    assert (gdir / "active_config").read_text() == "default"
    # the wizard's config reads the project from this gcloud config (CLOUDSDK_CONFIG)
    from rhaii_tui.config import gcloud_project

    assert gcloud_project({"CLOUDSDK_CONFIG": str(gdir)}) == PROJECT


def test_kubeconfig_per_cluster(sim_world):
    import yaml

    gke = sim_world.profile().gke()
    _wait_done(gke, _create(gke))
    entry = sim_world.endpoints["clusters"][KEY]
    kc = yaml.safe_load(open(entry["kubeconfig"]))
    assert stat.S_IMODE(os.stat(entry["kubeconfig"]).st_mode) == 0o600
    assert kc["clusters"][0]["cluster"]["server"] == f"https://{entry['endpoint']}"
    assert kc["clusters"][0]["cluster"]["certificate-authority-data"] == \
        gke.get_cluster(request={"name": f"{PARENT}/clusters/c1"}).master_auth.cluster_ca_certificate
    assert kc["users"][0]["user"]["token"] == sim_world.token
    assert kc["current-context"] == f"gke_{PROJECT}_{ZONE}_c1"


def test_restart_resumes_with_time_having_passed(tmp_path):
    speed = 600  # the TPU pool takes 1.5 s of wall time: plenty of margin to stop the world before
    with run_world(tmp_path, speed=speed) as w:
        gke = w.profile().gke()
        _wait_done(gke, _create(gke))
        sim = w.sim()
        w.call(lambda: sim.store.create(sim.store.type_for("configmaps"),
                                        {"metadata": {"name": "kept", "namespace": "default"}, "data": {"a": "1"}}))
        op = _tpu_pool(gke)
        assert w.call(lambda: w.world.operations[op.name].status) != "DONE"
    time.sleep(1.6)  # the world is down while the pool would finish
    with run_world(tmp_path, speed=speed) as w:
        assert w.world.resumed
        gke = w.profile().gke()
        op = gke.get_operation(request={"name": f"{PARENT}/operations/{op.name}"})
        assert op.status == container_v1.Operation.Status.DONE and not op.error.message
        c = gke.get_cluster(request={"name": f"{PARENT}/clusters/c1"})
        assert c.status == container_v1.Cluster.Status.RUNNING
        assert {p.name for p in c.node_pools} == {"default-pool", "tpu-pool"}
        assert len(_nodes(w, "cloud.google.com/gke-tpu-accelerator=tpu-v6e-slice")) == 3
        # the Kubernetes API reopened (on a new port); endpoints.json and the cluster agree
        assert c.endpoint == w.endpoints["clusters"][KEY]["endpoint"]
        sim = w.sim()
        cm = w.call(lambda: sim.store.get(sim.store.type_for("configmaps"), "default", "kept"))
        assert cm["data"] == {"a": "1"}


def test_killed_world_keeps_what_was_saved(tmp_path):
    """A world that dies without a clean shutdown loses at most the last half second."""
    with run_world(tmp_path, speed=2000) as w:
        gke = w.profile().gke()
        _wait_done(gke, _create(gke))
        state_file = w.world.state_file

        def saved_running() -> bool:  # what is on disk, not the flag (it clears before the write ends)
            try:
                saved = json.loads(state_file.read_text())
            except (OSError, ValueError):
                return False
            return any(c["name"] == "c1" and c["status"] == "RUNNING" for c in saved.get("clusters", []))

        w.wait_until(saved_running, timeout=15, message="the running cluster saved")
        w.stop(save=False)
    with run_world(tmp_path, speed=2000) as w:
        c = w.profile().gke().get_cluster(request={"name": f"{PARENT}/clusters/c1"})
        assert c.status == container_v1.Cluster.Status.RUNNING
        assert len(_nodes(w, "cloud.google.com/gke-nodepool=default-pool")) == 2


def test_saved_world_of_another_scenario_is_not_reused_silently(tmp_path):
    with run_world(tmp_path, scenario="low-quota"):
        pass
    with pytest.raises(WorldError, match="runs scenario 'low-quota', not 'stockout'"):
        with run_world(tmp_path, scenario="stockout"):
            pass


def test_every_scenario_starts(make_sim_world):
    # partial/deployed build the whole workload: see test_sim_world_scenarios.py
    for name in SCENARIOS:
        if get_scenario(name).start_state in ("partial", "deployed"):
            continue
        w = make_sim_world(name)
        assert w.endpoints["scenario"] == name


# --- the launcher: a real detached process ------------------------------------------------------


def test_ensure_world_starts_reuses_and_resumes_after_a_kill(tmp_path):
    from rhaii_tui.cloud.profile import SimProfile
    from rhaii_tui.sim.serve import SimWorldError, ensure_world

    d = tmp_path / "sim"
    ep_file = ensure_world(d, scenario="fresh", speed=2000)
    pid = json.loads(ep_file.read_text())["pid"]
    try:
        assert pid != os.getpid()
        assert ensure_world(d, scenario=None, speed=30) == ep_file  # reused, whatever the speed
        assert json.loads(ep_file.read_text())["pid"] == pid
        with pytest.raises(SimWorldError, match="is running scenario 'fresh', not 'deployed'"):
            ensure_world(d, scenario="deployed")
        gke = SimProfile(ep_file).gke()
        _wait_done(gke, _create(gke))
        time.sleep(1.0)  # the world saves changes within half a second
    finally:
        os.kill(pid, signal.SIGKILL)
        try:
            os.waitpid(pid, 0)  # our child: reap it
        except ChildProcessError:
            pass
    ep_file = ensure_world(d, scenario="fresh", speed=2000)
    pid2 = json.loads(ep_file.read_text())["pid"]
    try:
        assert pid2 != pid
        c = SimProfile(ep_file).gke().get_cluster(request={"name": f"{PARENT}/clusters/c1"})
        assert c.status == container_v1.Cluster.Status.RUNNING and c.endpoint
        assert (d / "emulator.log").exists()
    finally:
        os.kill(pid2, signal.SIGTERM)
        try:
            os.waitpid(pid2, 0)
        except ChildProcessError:
            pass


def test_background_world_stops_when_its_directory_is_deleted(tmp_path):
    """A world started in the background must not outlive its state directory: nobody could reach it."""
    import shutil

    from rhaii_tui.sim.serve import ensure_world

    d = tmp_path / "gone"
    pid = json.loads(ensure_world(d, scenario="fresh", speed=2000).read_text())["pid"]
    try:
        for _ in range(50):  # as `rm -rf` would, it can race a file the running world writes: again
            shutil.rmtree(d, ignore_errors=True)
            if not d.exists():
                break
            time.sleep(0.05)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            done, _status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the emulator kept running after its state directory was deleted")
        assert not d.exists()  # it did not recreate the directory to save into
    finally:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def test_saved_state_holds_no_secret_values_and_a_restart_behaves_the_same(tmp_path):
    import base64

    hf = "hf_" + "Zq9CanaryHfTok" * 3
    pw = "Canary-Registry-Pa55word-4412"
    auth = base64.b64encode(f"someone:{pw}".encode()).decode()
    docker = json.dumps({"auths": {"registry.redhat.io": {"auth": auth}}})
    with run_world(tmp_path, "cluster-ready") as w:
        sim = w.sim()

        def create():
            st = sim.store
            st.create(st.type_for("namespaces"), {"metadata": {"name": "ns1"}})
            st.create(st.type_for("secrets"), {"metadata": {"name": "hf", "namespace": "ns1", "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": hf}},
                "data": {"token": base64.b64encode(hf.encode()).decode()}})
            st.create(st.type_for("secrets"), {"metadata": {"name": "pull", "namespace": "ns1"},
                                               "type": "kubernetes.io/dockerconfigjson",
                                               "data": {".dockerconfigjson": base64.b64encode(docker.encode()).decode()}})
        w.call(create)
    saved = (tmp_path / "state.json").read_text()
    for canary in (hf, pw, auth, base64.b64encode(hf.encode()).decode()):
        assert canary not in saved
    with run_world(tmp_path, "cluster-ready") as w:
        sim = w.sim()
        secrets = w.call(lambda: {s["metadata"]["name"]: s for s in sim.store.list(
            sim.store.type_for("secrets"), "ns1")[0]})
        token = base64.b64decode(secrets["hf"]["data"]["token"]).decode()
        assert token.startswith("hf_") and len(token) == len(hf) and token[3:].isalnum()  # still token-shaped
        cfg = json.loads(base64.b64decode(secrets["pull"]["data"][".dockerconfigjson"]))
        user, _, password = base64.b64decode(cfg["auths"]["registry.redhat.io"]["auth"]).decode().partition(":")
        assert user == "someone" and password and password != pw


def test_gcloud_settings_the_user_adds_survive_a_restart(tmp_path):
    with run_world(tmp_path) as w:
        ini = tmp_path / "gcloud" / "configurations" / "config_default"
        ini.write_text(ini.read_text().replace("zone = europe-west4-a", "zone = us-east5-a")
                       + "\n[container]\nuse_application_default_credentials = false\n")
    with run_world(tmp_path) as w:
        text = ini.read_text()
        assert "zone = us-east5-a" in text and "use_application_default_credentials = false" in text
        assert f"container = {w.endpoints['google_api']}/" in text  # the new port


def test_sim_status_and_stop_commands(tmp_path, capsys):
    """The background world the wizard starts can be found and stopped from the command line."""
    from rhaii_tui import cli
    from rhaii_tui.sim.serve import ensure_world, running_world

    d = tmp_path / "bg"
    assert cli.main(["sim", "status", "--state-dir", str(d)]) == 1
    assert "No simulated cloud is running" in capsys.readouterr().out
    pid = json.loads(ensure_world(d, scenario="fresh", speed=2000).read_text())["pid"]
    try:
        assert cli.main(["sim", "status", "--state-dir", str(d)]) == 0
        assert f"pid {pid}, scenario fresh" in capsys.readouterr().out
        assert cli.main(["sim", "stop", "--state-dir", str(d)]) == 0
        assert "its world is saved" in capsys.readouterr().out
        assert running_world(d) is None
        assert json.loads((d / "state.json").read_text())["scenario"]["name"] == "fresh"  # saved, resumable
        assert cli.main(["sim", "stop", "--state-dir", str(d)]) == 0  # nothing to stop is not an error
    finally:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def test_endpoints_json_only_ever_names_paths_that_exist(tmp_path, monkeypatch):
    """A client that sees endpoints.json can use every path in it: the gcloud config dir and the
    kubeconfigs are written first, endpoints.json last (atomically), from the very first write."""
    import shutil

    from rhaii_tui.sim import world as world_mod

    real = world_mod._atomic_write
    missing: list[str] = []
    writes = []

    def checked(path, text, mode=0o600):
        if path.name == "endpoints.json":
            doc = json.loads(text)
            writes.append(doc)
            named = [doc["state_dir"], doc["gcloud_config"], os.path.join(doc["gcloud_config"], "configurations",
                                                                          "config_default")]
            named += [c["kubeconfig"] for c in doc["clusters"].values() if c.get("kubeconfig")]
            missing.extend(p for p in named if not os.path.exists(p))
        real(path, text, mode)

    monkeypatch.setattr(world_mod, "_atomic_write", checked)
    with run_world(tmp_path, scenario="deployed", speed=2000) as w:
        assert w.endpoints["clusters"]
    assert writes and not missing, missing
    # a restart on a directory whose client files were removed: the control planes come up again
    # during start; endpoints.json still waits for the files it names
    shutil.rmtree(tmp_path / "gcloud")
    for p in tmp_path.glob("kubeconfig-*"):
        p.unlink()
    with contextlib.suppress(FileNotFoundError):
        (tmp_path / "endpoints.json").unlink()
    writes.clear()
    with run_world(tmp_path, scenario="deployed", speed=2000) as w:
        assert w.world.resumed and w.endpoints["clusters"]
    assert writes and not missing, missing


def test_a_world_whose_directory_was_deleted_and_made_again_stops(tmp_path):
    """`rm -rf` of a running world's directory, then a new `rhaii-tui --sim` on the same path: the
    old world must not live on beside the new one (unseen by `sim stop`, sharing its files)."""
    import shutil

    from rhaii_tui.sim.serve import ensure_world

    d = tmp_path / "again"
    pid = json.loads(ensure_world(d, scenario="fresh", speed=2000).read_text())["pid"]
    pid2 = None
    try:
        for _ in range(50):  # as `rm -rf` would, it can race a file the running world writes: again
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(exist_ok=True)  # at once: the path is a directory again before the old world looks
            if not any(d.iterdir()):
                break
            time.sleep(0.05)
        pid2 = json.loads(ensure_world(d, scenario="fresh", speed=2000).read_text())["pid"]
        assert pid2 != pid
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            done, _status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the old emulator kept running beside the new one on the same directory")
        ep = json.loads((d / "endpoints.json").read_text())  # the new world's files are left alone
        assert ep["pid"] == pid2
        os.kill(pid2, 0)  # and it still runs
    finally:
        for p in (pid, pid2):
            if p is None:
                continue
            with contextlib.suppress(OSError):
                os.kill(p, signal.SIGKILL)
                os.waitpid(p, 0)


def test_the_control_api_fast_forwards_simulated_time_and_every_pod_grows_older(make_sim_world):
    """`POST /_emu/fast-forward {"seconds": N}`: N simulated seconds pass at once; pods' ages (from
    their creationTimestamp against the cluster's clock) grow by N. Bad values get Google's 400."""
    import httpx

    from rhaii_tui.config import DeployConfig
    from rhaii_tui.steps.context import StepContext
    from rhaii_tui.steps.podlife import to_epoch

    world = make_sim_world("deployed", speed=1)
    url, auth = f"{world.google_url}/_emu/", {"Authorization": f"Bearer {world.endpoints['token']}"}
    ctx = StepContext(DeployConfig(project=world.endpoints["project"]), world.profile(), None)
    kube = ctx.kube()

    def oldest_age() -> float:
        clock = httpx.get(url + "clock", headers=auth, timeout=10).json()["now_s"]
        return clock - min(to_epoch(p["metadata"]["creationTimestamp"])
                           for p in kube.list("v1", "Pod", ctx.cfg.namespace))

    before = oldest_age()
    r = httpx.post(url + "fast-forward", headers=auth, json={"seconds": 1200}, timeout=30)
    assert r.status_code == 200 and r.json()["skipped_s"] == 1200
    assert 1200 <= oldest_age() - before < 1200 + 60
    for bad in ({"seconds": 0}, {"seconds": "ten"}, {"seconds": True}, {}, {"seconds": 1e12}):
        r = httpx.post(url + "fast-forward", headers=auth, json=bad, timeout=10)
        assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT", (bad, r.text)
    assert httpx.post(url + "fast-forward", json={"seconds": 5}, timeout=10).status_code == 401  # control needs the token
