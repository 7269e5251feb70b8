"""The transcript: every change a headless apply makes is recorded with its step, the equivalent
gcloud/kubectl command and the outcome; no secret value reaches the file; `rhaii-tui transcript`
prints it."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from rhaii_tui import cli
from rhaii_tui.config import StateStore
from rhaii_tui.transcript import Recorder, kube_outcome, kubectl_command, read_entries, transcript_path

PROJECT = "rhaii-demo-project"
ZONE = "europe-west4-a"
CLUSTER = "rhaii-tpu-scaleout-cluster"
NS = "rhaii-inference"
HF_CANARY = "hf_" + "TranscriptCanary7" * 2 + "x" * 5
PW_CANARY = "Canary-Transcript-Pa55word-4417"


from clihelpers import clean_env, run  # noqa: F401 - clean_env is an autouse fixture


# --- units: the equivalent kubectl lines ---------------------------------------------------------


def test_kubectl_lines_for_the_requests_the_wizard_sends():
    base = "https://10.0.0.1"
    assert kubectl_command("POST", f"{base}/api/v1/namespaces", {"kind": "Namespace", "metadata": {"name": "x"}})[1] \
        == "kubectl create namespace x"
    action, cmd = kubectl_command(
        "PATCH", f"{base}/apis/serving.kserve.io/v1alpha1/namespaces/ns/llminferenceservices/svc"
                 "?fieldManager=rhaii-tui&force=true",
        {"kind": "LLMInferenceService", "metadata": {"name": "svc"}}, "application/apply-patch+yaml")
    assert cmd == ("kubectl apply --server-side --field-manager=rhaii-tui --force-conflicts -n ns "
                   "-f llminferenceservice-svc.yaml")
    assert action == "apply LLMInferenceService svc in ns"
    assert kubectl_command("DELETE", f"{base}/apis/networking.istio.io/v1alpha3/namespaces/istio-system/"
                                     "envoyfilters/f1")[1] == \
        "kubectl delete envoyfilters.networking.istio.io f1 -n istio-system"
    assert kubectl_command("PATCH", f"{base}/apis/apps/v1/namespaces/ns/deployments/d/scale",
                           {"spec": {"replicas": 0}}, "application/merge-patch+json")[1] == \
        "kubectl scale deployments.apps/d --replicas=0 -n ns"
    # a patch of a Secret never shows its data
    _, cmd = kubectl_command("PATCH", f"{base}/api/v1/namespaces/ns/secrets/s",
                             {"data": {"token": "c2VjcmV0"}}, "application/merge-patch+json")
    assert "c2VjcmV0" not in cmd and cmd.startswith("kubectl patch secrets s -n ns --type=merge")
    assert kube_outcome("DELETE", 404) == ("already gone (404)", True)
    assert kube_outcome("PATCH", 422)[1] is False


def test_recorder_masks_known_secret_values_and_token_shapes(tmp_path):
    rec = Recorder(tmp_path / "t.jsonl", secrets=lambda: ["s3cr3t-value-123"])
    rec.step = "3. Secrets"
    rec.record(client="kubernetes", action="x", command="echo s3cr3t-value-123",
               outcome="failed: Bearer ya29.abcdefghijklmnop hf_" + "Q" * 34, ok=False)
    text = (tmp_path / "t.jsonl").read_text()
    assert "s3cr3t-value-123" not in text and "ya29.abcdefghijklmnop" not in text and "Q" * 34 not in text
    (e,) = read_entries(tmp_path / "t.jsonl")
    assert e["step"] == "3. Secrets" and e["ok"] is False


# --- a whole headless apply against the emulator ---------------------------------------------------


def test_each_thread_records_its_own_step(tmp_path):
    """Pieces of an express run change the cloud at once: each change names its own step."""
    import threading

    rec = Recorder(tmp_path / "t.jsonl")
    rec.step = "1. whatever the page said last"
    both_inside = threading.Barrier(2)

    def piece(step: str, command: str) -> None:
        with rec.in_step(step):
            both_inside.wait(10)
            rec.record(client="kubernetes", action="create", command=command, outcome="created", ok=True)
            both_inside.wait(10)

    threads = [threading.Thread(target=piece, args=a) for a in
               (("2. TPU v6e node pool", "gcloud container node-pools create tpu-pool"),
                ("3. Namespace and secrets", "kubectl create namespace ns"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    steps = {e["command"].split()[1]: e["step"] for e in read_entries(tmp_path / "t.jsonl")}
    assert steps == {"container": "2. TPU v6e node pool", "create": "3. Namespace and secrets"}
    rec.record(client="gke", action="x", command="after", outcome="ok", ok=True)
    assert read_entries(tmp_path / "t.jsonl")[-1]["step"] == "1. whatever the page said last"


def test_a_full_apply_is_recorded_and_printed_without_any_secret(make_sim_world, capsys, tmp_path, monkeypatch):
    world = make_sim_world("fresh", speed=2000)
    monkeypatch.setenv("HF_TOKEN", HF_CANARY)
    monkeypatch.setenv("REGISTRY_PASSWORD", PW_CANARY)
    code, out, err = run(capsys, world, "apply", "--yes", "--registry-user", "someone", "--poll", "0.05")
    assert code == 0, out + err

    path = transcript_path(StateStore().root, PROJECT, ZONE, CLUSTER)
    raw = path.read_text()
    forms = [HF_CANARY, PW_CANARY, base64.b64encode(HF_CANARY.encode()).decode(),
             base64.b64encode(PW_CANARY.encode()).decode(),
             base64.b64encode(f"someone:{PW_CANARY}".encode()).decode()]
    for f in forms:
        assert f not in raw

    code, out, err = run(capsys, world, "transcript", "--json")
    assert code == 0, err
    doc = json.loads(out)
    entries = doc["entries"]
    commands = [e["command"] for e in entries]
    by_cmd = {e["command"]: e for e in entries}
    create = f"gcloud container clusters create {CLUSTER} --project {PROJECT} --zone {ZONE}"
    assert any(c.startswith(create) for c in commands), commands
    pool = next(e for e in entries if e["command"].startswith("gcloud container node-pools create tpu-pool"))
    assert "--num-nodes 3" in pool["command"] and pool["ok"] and pool["step"].startswith("2.")
    assert by_cmd[f"kubectl create namespace {NS}"]["step"].startswith("3.")
    secrets = [e for e in entries if "secret" in e["command"] and e["command"].startswith("kubectl apply")]
    assert secrets and all(e["step"].startswith("3.") for e in secrets)
    assert any("llminferenceservice" in c for c in commands)
    assert all(e["time"].endswith("Z") and e["client"] in ("gke", "kubernetes", "serviceusage") for e in entries)
    assert all(e["outcome"] for e in entries)
    assert {e["step"][:2].rstrip(".") for e in entries} >= {"2", "3", "5"}
    # reads are not changes
    assert not any(c.startswith(("kubectl get", "gcloud container clusters describe")) for c in commands)

    code, out, err = run(capsys, world, "transcript")
    assert code == 0 and create in out and "kubectl create namespace" in out


def test_verify_report_covers_the_whole_deployment(make_sim_world, capsys, tmp_path, monkeypatch):
    """`verify --report BASE`: 11 steps with times from the cloud, the versions, the cost, the
    transcript of the changes made (here a scale made before the report)."""
    world = make_sim_world("deployed", speed=2000)
    code, out, err = run(capsys, world, "ops", "scale", "--replicas", "4", "--yes")
    assert code == 0, out + err
    base = tmp_path / "reports" / "poc"
    code, out, err = run(capsys, world, "verify", "--report", str(base))
    assert code in (0, 1), err
    data = json.loads((tmp_path / "reports" / "poc.json").read_text())
    steps = data["steps"]
    assert [s["number"] for s in steps] == list(range(1, 12))
    assert all({"number", "title", "status", "started_at", "finished_at", "duration_s"} <= set(s) for s in steps)
    two = steps[1]   # the cluster and pool: from their GKE operations
    assert two["status"] == "done" and two["started_at"] and two["finished_at"] and two["duration_s"] is not None
    five = steps[4]  # the service: its creation and its Ready condition
    assert five["started_at"] and five["finished_at"]
    assert steps[8]["started_at"]  # step 9: this run
    v = data["versions"]
    assert v["gke_master"] and v["gke_node"] and v["model"] and v["vllm_image"]
    assert {"kserve", "istio"} <= set(v)
    assert data["cost"]["spent_usd"] > 0 and data["cost"]["since"]
    resize = next(e for e in data["transcript"] if "--num-nodes 4" in e["command"])
    assert resize["step"] == "12. Operate (ops scale)" and resize["ok"]
    md = (tmp_path / "reports" / "poc.md").read_text()
    assert "## The deployment, step by step" in md and "gcloud container clusters resize" in md
