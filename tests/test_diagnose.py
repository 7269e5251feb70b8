"""The guide's stuck-pod causes, decided from live evidence: each cause gets its title, evidence,
fix and the exact commands."""

from __future__ import annotations

import pytest

from rhaii_tui.config import DeployConfig
from rhaii_tui.steps.diagnose import diagnose_pod, diagnose_pods, events_for
from rhaii_tui.steps.podlife import MilestoneTracker

from test_podlife import T0, make_pod, starting, ts

CFG = DeployConfig(project="my-proj-123", zone="europe-west4-a", cluster="rhaii-c", replicas=3)


def node(name, *, tpu=True, ready=True, pool="tpu-pool", topology="2x2"):
    labels = {"cloud.google.com/gke-nodepool": pool if tpu else "default-pool"}
    if tpu:
        labels.update({"cloud.google.com/gke-tpu-accelerator": "tpu-v6e-slice",
                       "cloud.google.com/gke-tpu-topology": topology})
    return {"metadata": {"name": name, "labels": labels},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def event(pod, reason, message, at=10, type_="Warning"):
    return {"involvedObject": {"kind": "Pod", "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]},
            "reason": reason, "message": message, "type": type_, "lastTimestamp": ts(at)}


DEFAULT_NODES = [node("default-1", tpu=False), node("default-2", tpu=False)]
MSG_TOO_FEW = ("0/4 nodes are available: 2 Insufficient google.com/tpu, 2 node(s) didn't match Pod's node "
               "affinity/selector. preemption: 0/4 nodes are available: 2 No preemption victims found")
MSG_NONE = "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."


def test_pending_with_no_tpu_node_gives_the_resize_command():
    pod = make_pod(unschedulable_msg=MSG_NONE)
    d = diagnose_pod(pod, [event(pod, "FailedScheduling", MSG_NONE)], None, DEFAULT_NODES, CFG, now=T0 + 60)
    assert d.cause == "no-tpu-node"
    assert "no TPU v6e node" in d.title
    assert any("0 Ready of 0" in e for e in d.evidence)
    assert ("gcloud container clusters resize rhaii-c --node-pool tpu-pool --num-nodes 3 "
            "--zone europe-west4-a --project my-proj-123") in d.commands
    assert "12 TPU v6e chips" in d.fix


def test_pending_with_too_few_nodes_names_the_count_and_resizes_to_the_replicas():
    pod = make_pod(unschedulable_msg=MSG_TOO_FEW)
    nodes = DEFAULT_NODES + [node("tpu-a"), node("tpu-b")]
    d = diagnose_pod(pod, [event(pod, "FailedScheduling", MSG_TOO_FEW)], None, nodes, CFG, now=T0 + 60)
    assert d.cause == "too-few-nodes"
    assert "2 TPU node(s) for 3 replicas" in d.title
    assert any("2 Ready of 2" in e for e in d.evidence)
    assert any("Insufficient google.com/tpu" in e for e in d.evidence)
    assert d.commands[0].startswith("gcloud container clusters resize rhaii-c --node-pool tpu-pool --num-nodes 3")
    assert any('"replicas":2' in c for c in d.commands)  # the alternative when the zone has no capacity


def test_pending_from_the_condition_alone_without_events():
    pod = make_pod(unschedulable_msg=MSG_TOO_FEW)
    d = diagnose_pod(pod, [], None, [node("tpu-a")], CFG, now=T0 + 30)
    assert d.cause == "too-few-nodes"


def test_pending_because_of_an_untolerated_tpu_taint():
    msg = "0/3 nodes are available: 3 node(s) had untolerated taint {google.com/tpu: present}."
    pod = make_pod(unschedulable_msg=msg)
    nodes = [node("tpu-a"), node("tpu-b"), node("tpu-c")]
    d = diagnose_pod(pod, [event(pod, "FailedScheduling", msg)], None, nodes, CFG, now=T0 + 60)
    assert d.cause == "taint" and "toleration" in d.fix


def test_pending_because_nodes_are_not_ready():
    msg = "0/3 nodes are available: 3 node(s) had untolerated taint {node.kubernetes.io/not-ready: }."
    pod = make_pod(unschedulable_msg=msg)
    nodes = [node("tpu-a", ready=False), node("tpu-b", ready=False), node("tpu-c", ready=False)]
    d = diagnose_pod(pod, [event(pod, "FailedScheduling", msg)], None, nodes, CFG, now=T0 + 60)
    assert d.cause == "nodes-not-ready" and d.severity == "warning"


def test_pending_with_enough_nodes_but_chips_taken():
    msg = "0/3 nodes are available: 3 Insufficient google.com/tpu."
    pod = make_pod(unschedulable_msg=msg)
    d = diagnose_pod(pod, [event(pod, "FailedScheduling", msg)], None,
                     [node("tpu-a"), node("tpu-b"), node("tpu-c")], CFG, now=T0 + 60)
    assert d.cause == "tpu-in-use"


def test_pending_selector_mismatch_names_the_label():
    msg = "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."
    pod = make_pod(unschedulable_msg=msg)
    nodes = [node(f"tpu-{i}", topology="2x4") for i in range(3)]
    d = diagnose_pod(pod, [event(pod, "FailedScheduling", msg)], None, nodes, CFG, now=T0 + 60)
    assert d.cause == "node-selector"
    assert any("cloud.google.com/gke-tpu-topology=2x2" in e and "2x4" in e for e in d.evidence)


def test_a_short_normal_pending_has_no_diagnosis_but_a_long_one_warns():
    pod = make_pod()
    assert diagnose_pod(pod, [], None, [node("tpu-a")], CFG, now=T0 + 30) is None
    d = diagnose_pod(pod, [], None, [node("tpu-a")], CFG, now=T0 + 400)
    assert d.cause == "pending-slow" and d.severity == "warning"


def _init_crashloop():
    return make_pod(node="tpu-1", scheduled_at=5,
                    init=("waiting", {"reason": "CrashLoopBackOff", "message": "back-off 40s"},
                          {"restarts": 3, "last": {"exitCode": 1, "finishedAt": ts(50)}}),
                    main=("waiting", {"reason": "PodInitializing"}))


@pytest.mark.parametrize("line", [
    "huggingface_hub.errors.HfHubHTTPError: 401 Client Error: Unauthorized for url: https://huggingface.co/api/models/Qwen/Qwen2.5-3B-Instruct",
    "requests.exceptions.HTTPError: 403 Forbidden: Access to model Qwen/Qwen2.5-3B-Instruct is restricted",
])
def test_init_crashloop_with_401_or_403_blames_the_hf_token(line):
    logs = {"storage-initializer": ["INFO:root:Copying contents of hf://Qwen/Qwen2.5-3B-Instruct", line]}
    d = diagnose_pod(_init_crashloop(), [], logs, [], CFG, now=T0 + 60)
    assert d.cause == "hf-token"
    assert "Hugging Face rejected the token" in d.title
    assert "huggingface-token" in d.fix and "'token'" in d.fix
    assert any("kubectl create secret generic huggingface-token -n rhaii-inference" in c for c in d.commands)
    assert any("$HF_TOKEN" in c for c in d.commands)  # never a token value
    assert any(line[:40] in e for e in d.evidence)


def test_init_failure_with_network_errors_blames_egress():
    logs = {"storage-initializer": ["urllib3.exceptions.MaxRetryError: Max retries exceeded with url: "
                                    "(Caused by NameResolutionError: Temporary failure in name resolution)"]}
    d = diagnose_pod(_init_crashloop(), [], logs, [], CFG, now=T0 + 60)
    assert d.cause == "egress" and "NetworkPolicy" in d.fix


def test_init_failure_without_known_pattern_shows_the_log():
    d = diagnose_pod(_init_crashloop(), [], {"storage-initializer": ["something odd happened"]}, [], CFG,
                     now=T0 + 60)
    assert d.cause == "init-failed" and any("something odd happened" in e for e in d.evidence)


@pytest.mark.parametrize("reason", ["ErrImagePull", "ImagePullBackOff"])
def test_image_pull_failures_point_at_the_pull_secret(reason):
    pod = make_pod(phase="Pending", node="tpu-1", scheduled_at=5, initialized_at=60,
                   init=("terminated", {"exitCode": 0, "finishedAt": ts(60)}),
                   main=("waiting", {"reason": reason, "message": "Back-off pulling image"}))
    ev = event(pod, "Failed", 'Failed to pull image "registry.redhat.io/rhaiis/vllm-tpu-rhel9:3.2.5": '
               "unexpected status from HEAD request: 401 Unauthorized")
    d = diagnose_pod(pod, [ev], None, [], CFG, now=T0 + 90)
    assert d.cause == "pull-secret"
    assert "registry.redhat.io" in d.title
    assert "rhaiis-pull-secret" in d.fix
    assert any("kubectl create secret docker-registry rhaiis-pull-secret" in c for c in d.commands)
    assert any("401 Unauthorized" in e for e in d.evidence)


def test_image_not_found_is_not_blamed_on_the_secret():
    pod = make_pod(phase="Pending", node="tpu-1", scheduled_at=5, initialized_at=60,
                   init=("terminated", {"exitCode": 0, "finishedAt": ts(60)}),
                   main=("waiting", {"reason": "ErrImagePull",
                                     "message": 'rpc error: manifest unknown: image "x/y:9" not found'}))
    d = diagnose_pod(pod, [], None, [], CFG, now=T0 + 90)
    assert d.cause == "image-not-found"


def test_running_not_ready_for_long_is_still_compiling_with_the_last_lines():
    lines = ["INFO Loading weights took 12.30 seconds", "INFO TPU KV cache size: 3,145,728 tokens",
             "INFO Compiling the model with different input shapes."]
    pod = starting(started=170)
    assert diagnose_pod(pod, [], {"main": lines}, [], CFG, now=T0 + 170 + 200) is None  # within 3-5 min
    d = diagnose_pod(pod, [], {"main": lines}, [], CFG, now=T0 + 170 + 600)
    assert d.cause == "compiling"
    assert "still starting" in d.title and "compiling" in d.title
    assert any("Compiling the model" in e for e in d.evidence)
    assert any("kubectl logs" in c and "--tail=10" in c for c in d.commands)


def test_running_not_ready_with_an_error_in_the_log():
    lines = ["Traceback (most recent call last):", "RuntimeError: RESOURCE_EXHAUSTED: Attempting to allocate 40G"]
    d = diagnose_pod(starting(), [], {"main": lines}, [], CFG, now=T0 + 200)
    assert d.cause == "vllm-error" and "memory" in d.fix


def test_crashloop_of_vllm_reads_the_previous_log():
    pod = make_pod(phase="Running", node="tpu-1", scheduled_at=5, initialized_at=60,
                   init=("terminated", {"exitCode": 0, "finishedAt": ts(60)}),
                   main=("waiting", {"reason": "CrashLoopBackOff"},
                         {"restarts": 4, "last": {"exitCode": 1, "finishedAt": ts(90)}}))
    d = diagnose_pod(pod, [], {"main": ["RuntimeError: Failed to get global TPU topology"]}, [], CFG, now=T0 + 99)
    assert d.cause == "vllm-crash" and "TPU" in d.fix


def test_ready_pods_have_no_diagnosis_and_events_are_filtered_by_pod():
    from test_podlife import ready

    pod = ready(name="p1")
    other = make_pod(name="p2")
    assert diagnose_pod(pod, [event(other, "FailedScheduling", MSG_NONE)], None, [], CFG, now=T0 + 900) is None
    assert events_for(pod, [event(other, "FailedScheduling", MSG_NONE)]) == []
    out = diagnose_pods([pod, make_pod(name="p2", unschedulable_msg=MSG_NONE)], [], None, DEFAULT_NODES, CFG,
                        now=T0 + 60)
    assert [d.pod for d in out] == ["p2"]


def test_text_rendering_has_title_fix_and_commands():
    pod = make_pod(unschedulable_msg=MSG_NONE)
    d = diagnose_pod(pod, [], None, DEFAULT_NODES, CFG, now=T0 + 60)
    text = d.text()
    assert text.splitlines()[0] == d.title and "Fix:" in text and "$ gcloud container clusters resize" in text
    assert d.to_dict()["cause"] == "no-tpu-node"


def test_milestone_tracker_feeds_the_compiling_summary():
    mt = MilestoneTracker()
    mt.feed("Compiling the model with different input shapes.", ts=T0 + 300)
    d = diagnose_pod(starting(started=170), [], {"main": []}, [], CFG, now=T0 + 170 + 700, milestones=mt)
    assert d.cause == "compiling" and any("XLA compilation started" in e for e in d.evidence)


def test_a_long_compile_still_cites_the_line_it_started_with_once_it_scrolled_out_of_the_tail():
    lines = (["INFO Loading weights took 12.30 seconds", "INFO Compiling the model with different input shapes."]
             + [f"INFO Compiling graph {i} of 24" for i in range(12)])
    mt = MilestoneTracker()
    mt.feed_many(lines, ts=T0 + 300)
    d = diagnose_pod(starting(started=170), [], {"main": lines}, [], CFG, now=T0 + 170 + 700, milestones=mt)
    assert d.cause == "compiling" and "compiling for the TPU" in d.title
    assert "log (XLA compilation started): INFO Compiling the model with different input shapes." in d.evidence
    assert d.evidence[-1] == "log: INFO Compiling graph 11 of 24"  # and the tail, as it is
