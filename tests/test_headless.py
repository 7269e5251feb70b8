"""Headless `status` / `apply` / `verify` against the emulator, run in-process through cli.main."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from rhaii_tui import cli
from rhaii_tui import manifests as m
from rhaii_tui.config import DeployConfig, StateStore
from rhaii_tui.steps.context import StepContext
from rhaii_tui.sim.testing import EXAMPLE_HF_TOKEN, write_secret_files

PROJECT = "rhaii-demo-project"
ZONE = "europe-west4-a"
CLUSTER = "rhaii-tpu-scaleout-cluster"
NS = "rhaii-inference"
HF_CANARY = "hf_" + "CanaryEnvTok9" * 3            # 'hf_' + 39 letters/digits: a valid-looking token
PW_CANARY = "Canary-Registry-Pa55word-7731"


from clihelpers import clean_env, run  # noqa: F401 - clean_env is an autouse fixture


def secret_files(tmp_path: Path, token: str = EXAMPLE_HF_TOKEN) -> tuple[Path, Path]:
    return write_secret_files(tmp_path, token)


def ctx_for(world) -> StepContext:
    return StepContext(DeployConfig(project=PROJECT, zone=ZONE, cluster=CLUSTER, replicas=3), world.profile(),
                       StateStore())


def counts(world) -> dict[str, int]:
    """What exists now: GKE clusters/pools/create operations and the workload's Kubernetes objects."""
    ctx = ctx_for(world)
    clusters = ctx.gke.list_clusters(all_locations=True)
    out = {"clusters": len(clusters)}
    if not clusters:
        return out
    pools = ctx.gke.list_node_pools(CLUSTER)
    out["pools"] = len(pools)
    ops = ctx.gke.list_operations(CLUSTER, running_only=False)
    out["cluster_creates"] = sum(1 for o in ops if o.op_type == "CREATE_CLUSTER")
    out["pool_creates"] = sum(1 for o in ops if o.op_type == "CREATE_NODE_POOL")
    kube = ctx.kube()
    out["tpu_nodes"] = len(kube.list("v1", "Node", label_selector="cloud.google.com/gke-tpu-accelerator=tpu-v6e-slice"))
    out["llmisvcs"] = len(kube.list(m.LLMISVC_API_VERSION, "LLMInferenceService", NS)) if \
        kube.get("v1", "Namespace", NS) else 0
    pods = kube.list("v1", "Pod", NS, label_selector=m.label_selector(m.workload_labels(ctx.cfg.service)))
    out["workload_pods"] = sum(1 for p in pods if not p["metadata"].get("deletionTimestamp"))
    out["lease"] = 1 if kube.get("v1", "ConfigMap", "rhaii-tui-lease", NS) else 0
    return out


# --- status ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario,expect", [
    ("fresh", {1: "not_started", 2: "not_started", 3: "not_started", 5: "not_started", 9: "not_started"}),
    ("cluster-ready", {2: "done", 3: "not_started", 4: "not_started", 5: "not_started"}),
    ("deployed", {1: "done", 2: "done", 3: "done", 4: "done", 5: "done", 6: "done", 7: "done", 9: "done",
                  10: "not_started"}),
])
def test_status_json_carries_every_steps_state(make_sim_world, capsys, scenario, expect):
    world = make_sim_world(scenario)
    code, out, err = run(capsys, world, "status", "--json")
    assert code == (0 if scenario == "deployed" else 1), err  # 0 only when serving
    doc = json.loads(out)
    assert doc["serving"] is (scenario == "deployed") and doc["exit_code"] == code
    assert [s["number"] for s in doc["steps"]] == list(range(1, 12))
    assert all(s["status"] in ("not_started", "in_progress", "done", "failed", "skipped") and s["summary"]
               for s in doc["steps"])
    got = {s["number"]: s["status"] for s in doc["steps"]}
    assert {n: got[n] for n in expect} == expect
    assert doc["target"]["simulated"] is True and doc["target"]["project"] == PROJECT
    first = next((s["number"] for s in doc["steps"] if s["status"] not in ("done", "skipped")), None)
    assert doc["standing"]["first_not_done"] == first


def test_status_lines_name_each_step_and_where_it_stands(make_sim_world, capsys):
    world = make_sim_world("cluster-ready")
    code, out, _ = run(capsys, world, "status")
    assert code == 1, "steps 1-2 done is not serving"
    lines = out.splitlines()
    assert any(line.split()[:3] == ["2", "cluster", "done"] for line in lines)
    assert lines[-1] == "standing: steps 1-2 done; next: step 3 (Namespace and secrets)"


# --- apply -----------------------------------------------------------------------------------------


def test_apply_from_fresh_to_serving_then_status_all_done(sim_world, capsys, tmp_path):
    hf, pull = secret_files(tmp_path)
    code, out, err = run(capsys, sim_world, "apply", "--yes", "--hf-token-file", str(hf),
                         "--pull-secret-file", str(pull), "--poll", "0.05")
    assert code == 0, out + err
    assert "NetworkPolicies: skip (default for a PoC)" in out
    assert "lease taken" in out and "done: steps 1-11 complete" in out
    c = counts(sim_world)
    assert c == {"clusters": 1, "pools": 2, "cluster_creates": 1, "pool_creates": 1, "tpu_nodes": 3, "llmisvcs": 1,
                 "workload_pods": 3, "lease": 0}
    code, out, _ = run(capsys, sim_world, "status", "--json")
    doc = json.loads(out)
    assert {s["status"] for s in doc["steps"]} <= {"done", "skipped"}
    assert doc["standing"]["complete"] is True and doc["lease"] is None
    # a second apply has nothing left to do: every step is skipped as done
    code, out, err = run(capsys, sim_world, "apply", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert [s["action"] for s in doc["steps"]] == ["skipped (done)"] * 11
    assert counts(sim_world)["cluster_creates"] == 1


def test_apply_without_yes_on_fresh_names_the_cluster_and_cost_and_creates_nothing(sim_world, capsys, tmp_path):
    hf, pull = secret_files(tmp_path)
    code, out, err = run(capsys, sim_world, "apply", "--hf-token-file", str(hf), "--pull-secret-file", str(pull))
    assert code == 2
    assert f"cluster {CLUSTER} in {ZONE}" in err and "/day" in err and "--yes" in err
    assert "$376.80/day" in err            # 3 TPU nodes + the cluster
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert counts(sim_world) == {"clusters": 0}


def test_apply_through_stops_after_that_step(make_sim_world, capsys, tmp_path):
    world = make_sim_world("cluster-ready")
    hf, pull = secret_files(tmp_path)
    code, out, err = run(capsys, world, "apply", "--through", "4", "--json", "--hf-token-file", str(hf),
                         "--pull-secret-file", str(pull), "--poll", "0.05")
    assert code == 0, err
    doc = json.loads(out)
    assert [s["number"] for s in doc["steps"]] == [1, 2, 3, 4]
    assert [s["action"] for s in doc["steps"]] == ["skipped (done)", "skipped (done)", "ran", "ran"]
    assert all(s["status"] == "done" for s in doc["steps"])
    assert counts(world)["llmisvcs"] == 0


def test_a_run_cut_short_before_the_health_route_is_not_taken_for_done(make_sim_world, capsys, tmp_path):
    """Killed between the replicas becoming Ready and step 5's last action: status says step 5 is
    not finished (and why), and apply finishes it instead of skipping it."""
    world = make_sim_world("deployed")
    ctx = StepContext(DeployConfig(project=world.endpoints["project"]), world.profile(), StateStore(tmp_path / "s"))
    route = m.health_route_name(ctx.cfg.service)
    assert ctx.kube().delete(m.HTTPROUTE_API_VERSION, "HTTPRoute", route, ctx.cfg.namespace)
    code, out, err = run(capsys, world, "status", "--json")
    five = json.loads(out)["steps"][4]
    assert five["status"] == "in_progress" and f"health HTTPRoute {route} is not applied yet" in five["summary"]
    hf, pull = secret_files(tmp_path)
    code, out, err = run(capsys, world, "apply", "--yes", "--json", "--hf-token-file", str(hf),
                         "--pull-secret-file", str(pull), "--poll", "0.05")
    assert code == 0, out[-2000:] + err
    assert json.loads(out)["steps"][4]["action"] == "ran"
    assert ctx.kube().get(m.HTTPROUTE_API_VERSION, "HTTPRoute", route, ctx.cfg.namespace) is not None


def test_missing_hf_token_exits_2_naming_the_flag_and_the_variable(make_sim_world, capsys, tmp_path):
    world = make_sim_world("cluster-ready")
    _hf, pull = secret_files(tmp_path)
    code, out, err = run(capsys, world, "apply", "--pull-secret-file", str(pull))
    assert code == 2
    assert "huggingface-token" in err and "--hf-token-file" in err and "HF_TOKEN" in err
    assert "rhaiis-pull-secret:" not in err             # that one was given
    assert len(err.strip().splitlines()) == 1
    # refused before changing anything: no namespace yet
    assert ctx_for(world).kube().get("v1", "Namespace", NS) is None


def test_secrets_already_in_the_cluster_need_no_input(make_sim_world, capsys):
    world = make_sim_world("partial")
    code, out, err = run(capsys, world, "apply", "--through", "8", "--netpol", "skip", "--poll", "0.05")
    assert code == 0, out + err
    assert "step 3 Namespace and secrets: done" in out


def test_canary_secrets_from_env_never_appear_in_output_or_state_files(make_sim_world, capsys, tmp_path,
                                                                       monkeypatch):
    world = make_sim_world("cluster-ready")
    monkeypatch.setenv("HF_TOKEN", HF_CANARY)
    monkeypatch.setenv("REGISTRY_PASSWORD", PW_CANARY)
    code, out, err = run(capsys, world, "apply", "--registry-user", "someone", "--through", "5", "--poll", "0.05")
    assert code == 0, out + err
    code2, out2, err2 = run(capsys, world, "apply", "--through", "5", "--json")
    assert code2 == 0, err2
    # the secrets reached the cluster
    kube = ctx_for(world).kube()
    hf = kube.get("v1", "Secret", "huggingface-token", NS)
    assert base64.b64decode(hf["data"]["token"]).decode() == HF_CANARY
    forms = [HF_CANARY, PW_CANARY, base64.b64encode(HF_CANARY.encode()).decode(),
             base64.b64encode(PW_CANARY.encode()).decode(), base64.b64encode(f"someone:{PW_CANARY}".encode()).decode()]
    texts = [out, err, out2, err2]
    for root in (tmp_path / "state", world.state_dir):
        texts += [p.read_text(errors="replace") for p in Path(root).rglob("*") if p.is_file()]
    for t in texts:
        for f in forms:
            assert f not in t


def test_bad_secret_inputs_exit_2_with_one_line(make_sim_world, capsys, tmp_path, monkeypatch):
    world = make_sim_world("cluster-ready")
    hf, pull = secret_files(tmp_path)
    bad = tmp_path / "bad-token"
    bad.write_text("not-a-token\n")
    template = Path(__file__).resolve().parents[1] / "templates" / "redhat-pull-secret.yaml.template"
    cases = [
        (["--hf-token-file", str(tmp_path / "nope")], "does not exist"),
        (["--hf-token-file", str(bad)], "hf_"),
        (["--pull-secret-file", str(template)], "placeholder"),
        (["--registry-user", "someone"], "REGISTRY_PASSWORD"),
        (["--registry-user", "someone", "--pull-secret-file", str(pull)], "not both"),
        (["--replace-failed-pool"], "--yes"),
    ]
    for extra, words in cases:
        code, out, err = run(capsys, world, "apply", *extra)
        assert code == 2, (extra, err)
        assert words in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, (extra, err)
    assert ctx_for(world).kube().get("v1", "Namespace", NS) is None


def test_real_cloud_step_4_needs_the_installer_checkout(make_sim_world, capsys, tmp_path):
    """A bad --installer-dir is refused before anything changes."""
    world = make_sim_world("cluster-ready")
    hf, pull = secret_files(tmp_path)
    code, out, err = run(capsys, world, "apply", "--installer-dir", str(tmp_path / "missing"),
                         "--hf-token-file", str(hf), "--pull-secret-file", str(pull))
    assert code == 2 and "rhaii-on-xks" in err and "--installer-dir" in err


def test_apply_stops_at_the_first_failure_with_its_diagnosis(make_sim_world, capsys, tmp_path):
    world = make_sim_world("bad-hf-token", start_state="cluster-ready")
    hf, pull = secret_files(tmp_path)
    code, out, err = run(capsys, world, "apply", "--json", "--hf-token-file", str(hf), "--pull-secret-file",
                         str(pull), "--poll", "0.05")
    assert code == 1, err
    doc = json.loads(out)
    assert doc["error"]["step"] == 5 and doc["error"]["fix"]
    assert "token" in (doc["error"]["message"] + doc["error"]["detail"]).lower()
    assert [s["action"] for s in doc["steps"]][5:] == ["not reached"] * 6
    assert "step 5" in err and len(err.strip().splitlines()) == 1


# --- verify ----------------------------------------------------------------------------------------


def test_verify_json_on_deployed_exits_0(make_sim_world, capsys):
    world = make_sim_world("deployed")
    code, out, err = run(capsys, world, "verify", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["ok"] is True and doc["verdict"]["passed"] is True
    assert set(doc["verdict"]["steps"].values()) == {"pass"}


def test_verify_on_a_vanished_cluster_fails_with_one_line(sim_world, capsys):
    code, out, err = run(capsys, sim_world, "verify")
    assert code == 1
    assert "verify failed" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_apply_stops_at_a_failed_preflight(make_sim_world, capsys, tmp_path):
    world = make_sim_world("low-quota")
    hf, pull = secret_files(tmp_path)
    code, out, err = run(capsys, world, "apply", "--yes", "--hf-token-file", str(hf), "--pull-secret-file", str(pull))
    assert code == 1
    assert "step 1 (Preflight checks) failed" in err and "quota" in err.lower()
    assert counts(world) == {"clusters": 0}


def test_a_disabled_kubernetes_engine_api_is_step_1s_failure_not_the_lease(make_sim_world, capsys, tmp_path):
    """Taking the deploy lease reads the cluster; a disabled API there is not a lease problem: step 1
    runs and says which API to enable."""
    world = make_sim_world("api-disabled")
    hf, pull = secret_files(tmp_path)
    code, out, err = run(capsys, world, "apply", "--yes", "--json", "--hf-token-file", str(hf),
                         "--pull-secret-file", str(pull))
    assert code == 1, err
    doc = json.loads(out)
    error = doc["error"]
    assert error["step"] == 1 and error["title"] == "Preflight checks"
    assert "gcloud services enable container.googleapis.com --project rhaii-demo-project" in error["fix"]
    assert "lease" not in error["message"] and "lease" not in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert doc["steps"][0]["action"] == "ran" and doc["lease"] is None


def test_a_lease_that_cannot_be_written_names_the_step_it_stopped(make_sim_world, capsys, monkeypatch):
    from rhaii_tui.cloud.gke import CloudError
    from rhaii_tui.lease import Lease

    def refuse(self, force=False):
        raise CloudError("permission", "configmaps \"rhaii-tui-lease\" is forbidden",
                         "Ask for roles/container.developer on the project.")

    monkeypatch.setattr(Lease, "acquire", refuse)
    world = make_sim_world("partial")
    code, out, err = run(capsys, world, "apply", "--through", "6", "--json")
    assert code == 1, err
    doc = json.loads(out)
    assert doc["error"]["step"] == 6 and doc["error"]["kind"] == "permission"
    assert "could not take the deploy lease" in doc["error"]["message"] and "roles/container.developer" in \
        doc["error"]["fix"]
    assert [s["action"] for s in doc["steps"][:5]] == ["skipped (done)"] * 5
    assert doc["steps"][5]["action"] == "not reached"


# --- step 4 with an installer (the real cloud's path, on the emulator) ------------------------------

INSTALLER = """
import json, os, sys, urllib.request
kc = os.environ.get("KUBECONFIG", "")
print("installer: KUBECONFIG", "set" if kc and os.path.exists(kc) else "missing")
ep = json.load(open(sys.argv[1]))
key = next(iter(ep["clusters"]))
req = urllib.request.Request(ep["google_api"] + "/_emu/clusters/" + key + "/install-operators", method="POST",
                             headers={"Authorization": "Bearer " + ep["token"]})
urllib.request.urlopen(req).read()
print("installer: done")
"""


def installer_profile(world):
    """The emulator behind a profile that installs like the real cloud: a command from a checkout."""
    import sys

    from rhaii_tui.cloud.profile import CredentialsError, OperatorInstall, SimProfile

    class InstallerProfile(SimProfile):
        def install_operators(self, cluster_key, installer_dir=None):
            if not installer_dir:
                raise CredentialsError("To install the operators, point the wizard at a local checkout of "
                                       "rhaii-on-xks.")
            return OperatorInstall(command=[sys.executable, "install.py", str(self.endpoints_file)],
                                   cwd=installer_dir)

    return InstallerProfile(world.endpoints_file)


def test_step_4_runs_the_installer_from_the_checkout_with_this_clusters_kubeconfig(make_sim_world, tmp_path):
    import io

    from rhaii_tui.headless import INSTALLER_HINT, Output, run_apply
    from rhaii_tui.steps.registry import RunOptions

    world = make_sim_world("cluster-ready")
    ctx = StepContext(DeployConfig(project=PROJECT, zone=ZONE, cluster=CLUSTER), installer_profile(world),
                      StateStore())
    from rhaii_tui.secrets import hf_secret_from_form, pull_secret_from_form
    ctx.secrets.add(hf_secret_from_form("hf_" + "x" * 34))
    ctx.secrets.add(pull_secret_from_form("someone", "not-a-real-password"))
    out, err = io.StringIO(), io.StringIO()
    code = run_apply(ctx, Output(False, out, err), through=4,
                     opts=RunOptions(poll=0.05, installer_hint=INSTALLER_HINT))
    assert code == 2 and "--installer-dir" in err.getvalue() and "rhaii-on-xks" in err.getvalue()
    checkout = tmp_path / "rhaii-on-xks"
    checkout.mkdir()
    (checkout / "Makefile").write_text("deploy-all:\n\tpython install.py\n")
    (checkout / "install.py").write_text(INSTALLER)
    out, err = io.StringIO(), io.StringIO()
    code = run_apply(ctx, Output(False, out, err), through=4,
                     opts=RunOptions(poll=0.05, installer_dir=str(checkout), kubeconfig_dir=str(tmp_path / "kc")))
    assert code == 0, out.getvalue() + err.getvalue()
    text = out.getvalue()
    assert "installer: KUBECONFIG set" in text and "installer: done" in text
    assert (tmp_path / "kc" / f"kubeconfig-{CLUSTER}").stat().st_mode & 0o777 == 0o600
    assert "All 5 operators ready" in text


def test_a_resize_needs_yes_too(make_sim_world, capsys):
    world = make_sim_world("deployed")
    code, out, err = run(capsys, world, "--replicas", "4", "apply")
    assert code == 2
    assert "resize node pool tpu-pool from 3 to 4 node(s)" in err and "$500.40/day" in err and "--yes" in err
    assert counts(world)["tpu_nodes"] == 3


# --- one deployment, whichever path ----------------------------------------------------------------


def test_netpol_apply_overrides_an_earlier_skip_and_apply_creates_what_render_manifests_writes(
        make_sim_world, capsys, tmp_path):
    import yaml

    world = make_sim_world("cluster-ready")
    hf, pull = secret_files(tmp_path)
    code, out, err = run(capsys, world, "apply", "--through", "8", "--netpol", "skip", "--hf-token-file", str(hf),
                         "--pull-secret-file", str(pull), "--poll", "0.05")
    assert code == 0, out + err
    kube = ctx_for(world).kube()
    assert kube.list("networking.k8s.io/v1", "NetworkPolicy", NS) == []
    # the earlier run remembered "skip"; asking for the policies now applies them
    code, out, err = run(capsys, world, "apply", "--through", "8", "--netpol", "apply", "--json", "--poll", "0.05")
    assert code == 0, out + err
    doc = json.loads(out)
    step8 = next(s for s in doc["steps"] if s["number"] == 8)
    assert step8["action"] == "ran" and step8["status"] == "done", step8
    assert sorted(p["metadata"]["name"] for p in kube.list("networking.k8s.io/v1", "NetworkPolicy", NS)) == \
        sorted(m.NETWORK_POLICY_NAMES)
    # render-manifests writes the same objects apply created: names, kinds, labels
    code, out, err = run(capsys, world, "render-manifests", "--out", str(tmp_path / "out"))
    assert code == 0, err
    rendered = [doc for path in sorted((tmp_path / "out").rglob("*.yaml"))
                for doc in yaml.safe_load_all(path.read_text()) if doc]
    assert len(rendered) == len(m.MANIFEST_FILES)
    for obj in rendered:
        md = obj["metadata"]
        live = kube.get(obj["apiVersion"], obj["kind"], md["name"], md.get("namespace"))
        assert live is not None, f"{obj['kind']} {md['name']} rendered but not created by apply"
        live_labels = {k: v for k, v in (live["metadata"].get("labels") or {}).items()
                       if k != "kubernetes.io/metadata.name"}  # the API server's own namespace label
        assert live_labels == (md.get("labels") or {}), (obj["kind"], md["name"])
    route = next(o for o in rendered if o["kind"] == "HTTPRoute")
    live = kube.get(route["apiVersion"], "HTTPRoute", route["metadata"]["name"], NS)
    assert [b["group"] for r in live["spec"]["rules"] for b in r["backendRefs"]] == \
        [b["group"] for r in route["spec"]["rules"] for b in r["backendRefs"]]


def test_apply_on_a_stockout_exits_1_naming_it_and_the_options(make_sim_world, capsys, tmp_path):
    world = make_sim_world("stockout", stockout_fail_seconds=200000)  # GKE would give up after 100 s of wall time
    hf, pull = secret_files(tmp_path)
    code, out, err = run(capsys, world, "apply", "--yes", "--json", "--hf-token-file", str(hf),
                         "--pull-secret-file", str(pull), "--poll", "0.05")
    assert code == 1, out + err
    doc = json.loads(out)
    assert doc["error"]["step"] == 2 and "Stockout" in doc["error"]["message"]
    assert "ZONE_RESOURCE_POOL_EXHAUSTED" in doc["error"]["message"] and ZONE in doc["error"]["message"]
    stock = doc["error"]["stockout"]
    assert stock["zone"] == ZONE and stock["codes"] == ["ZONE_RESOURCE_POOL_EXHAUSTED"]
    assert [o["key"] for o in stock["options"]] == ["wait", "zone", "region", "spot", "flex-start", "reservation"]
    assert stock["billing"]["per_day"] == 6.0
    assert "step 2" in err and "Stockout" in err and len(err.strip().splitlines()) == 1
    assert [s["action"] for s in doc["steps"]][2:] == ["not reached"] * 9
    # the lines a person reads name the options with their commands and costs
    code, out, err = run(capsys, world, "apply", "--yes", "--hf-token-file", str(hf), "--pull-secret-file",
                         str(pull), "--poll", "0.05")
    assert code == 1
    for needle in ("Already running and billing", "~$6.00/day", "Keep waiting", "--keep-waiting",
                   "Another region (a new cluster)", "apply --yes", "rhaii-tui --zone ", "Spot TPU v6e", "--spot",
                   "Flex-start", "--flex-start", "No other zone of europe-west4 offers TPU v6e"):
        assert needle in out, needle
    assert counts(world)["pool_creates"] == 1  # the second apply followed the same pool, created nothing
    # once GKE gave up, the failed pool's stockout comes with the options too
    world.fast_forward(200000)
    code, out, err = run(capsys, world, "apply", "--yes", "--json", "--hf-token-file", str(hf), "--pull-secret-file",
                         str(pull), "--poll", "0.05")
    assert code == 1, out + err
    doc = json.loads(out)
    assert "ZONE_RESOURCE_POOL_EXHAUSTED" in doc["error"]["message"] and doc["error"]["stockout"]["options"]
    assert "--replace-failed-pool" in doc["error"]["stockout"]["options"][0]["commands"][0]


def test_apply_keep_waiting_follows_a_stockout_until_gke_gives_up(make_sim_world, capsys, tmp_path):
    world = make_sim_world("stockout", stockout_fail_seconds=600)
    hf, pull = secret_files(tmp_path)
    code, out, err = run(capsys, world, "apply", "--yes", "--keep-waiting", "--hf-token-file", str(hf),
                         "--pull-secret-file", str(pull), "--poll", "0.05")
    assert code == 1, out + err
    assert "still waiting, as asked" in out
    assert "Not all instances running in IGM after 10m" in out and "ZONE_RESOURCE_POOL_EXHAUSTED" in err
    assert "--replace-failed-pool" in out  # once GKE gave up, waiting more means replacing the failed pool
