"""The guide's pod lifecycle model: stages, time in stage and severity, milestones, the keyed table."""

from __future__ import annotations

import datetime as dt

import pytest

from rhaii_tui.steps.podlife import (MilestoneTracker, PodTable, RowDiff, Stage, classify,
                                     expected_text, fmt_duration, severity_for)

T0 = 1_800_000_000.0


def ts(offset: float) -> str:
    return dt.datetime.fromtimestamp(T0 + offset, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_pod(name="svc-kserve-abc", uid=None, *, phase="Pending", node=None, scheduled_at=None,
             unschedulable_msg=None, init=None, main=None, ready_at=None, initialized_at=None,
             deleting_at=None, grace=30, rv="1", extra_containers=()):
    """A workload pod as the API returns it. init/main: (state kind, detail dict, extra fields)."""
    conds = []
    if scheduled_at is not None:
        conds.append({"type": "PodScheduled", "status": "True", "lastTransitionTime": ts(scheduled_at)})
    elif unschedulable_msg is not None:
        conds.append({"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                      "message": unschedulable_msg, "lastTransitionTime": ts(0)})
    if initialized_at is not None:
        conds.append({"type": "Initialized", "status": "True", "lastTransitionTime": ts(initialized_at)})
    if ready_at is not None:
        conds.append({"type": "Ready", "status": "True", "lastTransitionTime": ts(ready_at)})
    elif main is not None:
        conds.append({"type": "Ready", "status": "False", "lastTransitionTime": ts(0)})
    status = {"phase": phase, "conditions": conds}

    def cstatus(name_, spec_):
        kind, detail, *rest = spec_
        extra = rest[0] if rest else {}
        cs = {"name": name_, "ready": bool(extra.get("ready")), "restartCount": extra.get("restarts", 0),
              "state": {kind: detail}, "image": "img", "imageID": ""}
        if "last" in extra:
            cs["lastState"] = {"terminated": extra["last"]}
        return cs

    if init is not None:
        status["initContainerStatuses"] = [cstatus("storage-initializer", init)]
    if main is not None:
        status["containerStatuses"] = [cstatus("main", main)] + [cstatus(n, s) for n, s in extra_containers]
    meta = {"name": name, "namespace": "rhaii-inference", "uid": uid or f"uid-{name}",
            "creationTimestamp": ts(0), "resourceVersion": rv,
            "labels": {"kserve.io/component": "workload"}}
    if deleting_at is not None:
        meta["deletionTimestamp"] = ts(deleting_at + grace)
        meta["deletionGracePeriodSeconds"] = grace
    spec = {"containers": [{"name": "main", "image": "registry.redhat.io/rhaiis/vllm-tpu-rhel9:3.2.5"}]
            + [{"name": n} for n, _ in extra_containers],
            "initContainers": [{"name": "storage-initializer"}],
            "imagePullSecrets": [{"name": "rhaiis-pull-secret"}],
            "nodeSelector": {"cloud.google.com/gke-tpu-accelerator": "tpu-v6e-slice",
                             "cloud.google.com/gke-tpu-topology": "2x2"}}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}


def downloading(**kw):
    return make_pod(node="tpu-1", scheduled_at=100, init=("running", {"startedAt": ts(110)}),
                    main=("waiting", {"reason": "PodInitializing"}), **kw)


def initialized(**kw):
    return make_pod(node="tpu-1", scheduled_at=100, initialized_at=160,
                    init=("terminated", {"exitCode": 0, "reason": "Completed", "finishedAt": ts(160)}),
                    main=("waiting", {"reason": "PodInitializing"}), **kw)


def starting(started=170, **kw):
    return make_pod(phase="Running", node="tpu-1", scheduled_at=100, initialized_at=160,
                    init=("terminated", {"exitCode": 0, "finishedAt": ts(160)}),
                    main=("running", {"startedAt": ts(started)}), **kw)


def ready(**kw):
    return make_pod(phase="Running", node="tpu-1", scheduled_at=100, initialized_at=160, ready_at=400,
                    init=("terminated", {"exitCode": 0, "finishedAt": ts(160)}),
                    main=("running", {"startedAt": ts(170)}, {"ready": True}), **kw)


# --- stages ---------------------------------------------------------------------------------------


def test_the_guides_happy_path_stages_in_order():
    assert classify(make_pod(), now=T0 + 30).stage is Stage.PENDING
    life = classify(downloading(), now=T0 + 130)
    assert (life.stage, life.status_text) == (Stage.INIT, "Init:0/1")
    life = classify(initialized(), now=T0 + 165)
    assert (life.stage, life.status_text) == (Stage.POD_INITIALIZING, "PodInitializing")
    life = classify(starting(), now=T0 + 200)
    assert (life.stage, life.ready_text) == (Stage.STARTING, "0/1")
    life = classify(ready(), now=T0 + 500)
    assert (life.stage, life.ready_text, life.severity) == (Stage.READY, "1/1", "ok")
    assert str(Stage.STARTING) == "Running 0/1" and str(Stage.READY) == "Running 1/1"


def test_time_in_stage_comes_from_the_stage_start_not_the_pod_age():
    assert classify(make_pod(), now=T0 + 30).seconds_in_stage == pytest.approx(30)
    assert classify(downloading(), now=T0 + 130).seconds_in_stage == pytest.approx(20)  # init startedAt 110
    assert classify(initialized(), now=T0 + 168).seconds_in_stage == pytest.approx(8)  # Initialized at 160
    assert classify(starting(started=170), now=T0 + 290).seconds_in_stage == pytest.approx(120)


@pytest.mark.parametrize("pod,expected", [
    (make_pod(node="tpu-1", scheduled_at=5, init=("waiting", {"reason": "CrashLoopBackOff",
                                                             "message": "back-off 20s"},
                                                  {"restarts": 3, "last": {"exitCode": 1, "finishedAt": ts(50)}}),
              main=("waiting", {"reason": "PodInitializing"})), Stage.INIT_CRASHLOOP),
    (make_pod(node="tpu-1", scheduled_at=5, init=("terminated", {"exitCode": 1, "reason": "Error",
                                                                 "finishedAt": ts(40)}),
              main=("waiting", {"reason": "PodInitializing"})), Stage.INIT_ERROR),
    (make_pod(phase="Pending", node="tpu-1", scheduled_at=5, initialized_at=60,
              init=("terminated", {"exitCode": 0, "finishedAt": ts(60)}),
              main=("waiting", {"reason": "ErrImagePull", "message": "401 Unauthorized"})), Stage.ERR_IMAGE_PULL),
    (make_pod(phase="Pending", node="tpu-1", scheduled_at=5, initialized_at=60,
              init=("terminated", {"exitCode": 0, "finishedAt": ts(60)}),
              main=("waiting", {"reason": "ImagePullBackOff", "message": "Back-off pulling image"})),
     Stage.IMAGE_PULL_BACKOFF),
    (make_pod(phase="Running", node="tpu-1", scheduled_at=5, initialized_at=60,
              init=("terminated", {"exitCode": 0, "finishedAt": ts(60)}),
              main=("waiting", {"reason": "CrashLoopBackOff"},
                    {"restarts": 4, "last": {"exitCode": 1, "finishedAt": ts(90)}})), Stage.CRASHLOOP),
    (ready(deleting_at=600), Stage.TERMINATING),
])
def test_every_failure_state_is_recognised_and_red(pod, expected):
    life = classify(pod, now=T0 + 700)
    assert life.stage is expected
    if expected is not Stage.TERMINATING:
        assert life.stage.is_failure and life.severity == "red"
    assert expected.value in life.status_text or life.status_text == f"Init:{expected.value}"


def test_init_image_pull_failure_is_shown_with_the_init_prefix():
    pod = make_pod(node="tpu-1", scheduled_at=5, init=("waiting", {"reason": "ImagePullBackOff"}))
    life = classify(pod, now=T0 + 60)
    assert life.stage is Stage.IMAGE_PULL_BACKOFF and life.status_text == "Init:ImagePullBackOff"


def test_restarts_count_init_and_main_containers():
    pod = make_pod(node="tpu-1", scheduled_at=5,
                   init=("waiting", {"reason": "CrashLoopBackOff"}, {"restarts": 3}),
                   main=("waiting", {"reason": "PodInitializing"}))
    assert classify(pod, now=T0 + 60).restarts == 3


@pytest.mark.parametrize("make,now,sev", [
    (make_pod, 200, "ok"),          # Pending 200 s of 1-5 min
    (make_pod, 400, "amber"),       # past 5 min
    (make_pod, 700, "red"),         # more than 2x 5 min
    (downloading, 110 + 50, "ok"),  # Init 50 s of 30-60 s
    (downloading, 110 + 90, "amber"),
    (downloading, 110 + 130, "red"),
    (starting, 170 + 280, "ok"),    # Running 0/1: 280 s of 3-5 min
    (starting, 170 + 420, "amber"),
    (starting, 170 + 700, "red"),
])
def test_severity_amber_past_the_guides_range_red_far_past(make, now, sev):
    assert classify(make(), now=T0 + now).severity == sev


def test_time_scale_converts_wall_seconds_to_guide_seconds():
    # simulated cloud at speed 30: 12 wall seconds of Pending are 6 guide minutes (past 1-5 min)
    life = classify(make_pod(), now=T0 + 12, time_scale=30.0)
    assert life.seconds_in_stage == pytest.approx(360)
    assert life.severity == "amber"
    assert classify(make_pod(), now=T0 + 12, time_scale=1.0).severity == "ok"


def test_terminating_uses_the_grace_period():
    pod = ready(deleting_at=600, grace=30)
    assert classify(pod, now=T0 + 610).severity == "ok"
    assert classify(pod, now=T0 + 645).severity == "amber"
    assert classify(pod, now=T0 + 700).severity == "red"


def test_expected_texts_match_the_guide():
    assert expected_text(Stage.PENDING) == "1-5 min"
    assert expected_text(Stage.INIT) == "30-60 s"
    assert expected_text(Stage.POD_INITIALIZING) == "~10s"
    assert expected_text(Stage.STARTING) == "3-5 min"
    assert severity_for(Stage.READY, 10_000) == "ok"
    assert fmt_duration(250) == "4m10s" and fmt_duration(8) == "8s" and fmt_duration(3900) == "1h05m"


def test_model_objects_from_the_typed_client_are_accepted():
    from kubernetes import client

    pod = client.ApiClient()._ApiClient__deserialize(downloading(), "V1Pod")
    life = classify(pod, now=T0 + 130)
    assert life.stage is Stage.INIT and life.seconds_in_stage == pytest.approx(20)


# --- milestones -----------------------------------------------------------------------------------


VLLM_LOG = [
    (200, "INFO 01-01 10:00:00 [loader.py:1] Loading safetensors checkpoint shards: 100% Completed | 2/2"),
    (212, "INFO 01-01 10:00:12 [default_loader.py:262] Loading weights took 12.30 seconds"),
    (230, "INFO 01-01 10:00:30 [kv_cache_utils.py:716] TPU KV cache size: 3,145,728 tokens"),
    (231, "INFO 01-01 10:00:31 [tpu_model_runner.py:1] Compiling the model with different input shapes."),
    (400, "INFO 01-01 10:03:20 [tpu_model_runner.py:1] Compiled the model with different input shapes."),
]


def test_milestones_in_order_with_durations_and_kv_cache_size():
    mt = MilestoneTracker(start=T0 + 100)
    assert mt.feed("Successfully copied hf://Qwen/Qwen2.5-3B-Instruct to /mnt/models", ts=T0 + 150).key == "download"
    for t, line in VLLM_LOG:
        mt.feed(line, ts=T0 + t)
    assert mt.model_uri == "hf://Qwen/Qwen2.5-3B-Instruct"
    assert mt.kv_cache_tokens == 3_145_728 and mt.kv_cache_device == "TPU"
    assert mt.weights_seconds == pytest.approx(12.3)
    durs = {k: d for k, _, _, d in mt.durations()}
    assert durs == {"download": 50, "shards": 50, "weights": 12, "kv_cache": 18, "compile_start": 1,
                    "compile_done": 169}
    assert mt.compile_seconds() == 169 and mt.done and not mt.compiling
    assert mt.summary().startswith("XLA compilation done")


def test_gpu_prefix_and_kubectl_timestamps_are_understood():
    mt = MilestoneTracker()
    m = mt.feed("2026-01-01T10:00:30.5Z INFO GPU KV cache size: 1234 tokens")
    assert m.key == "kv_cache" and mt.kv_cache_tokens == 1234 and mt.kv_cache_device == "GPU"
    assert m.at == pytest.approx(dt.datetime(2026, 1, 1, 10, 0, 30, 500000, dt.timezone.utc).timestamp())
    assert mt.summary() == "KV cache allocated (1,234 tokens)"


def test_a_repeated_line_does_not_move_a_milestone_and_compiling_is_reported():
    mt = MilestoneTracker()
    mt.feed(VLLM_LOG[3][1], ts=T0 + 1)
    assert mt.compiling
    assert mt.feed(VLLM_LOG[3][1], ts=T0 + 99) is None
    assert mt.reached["compile_start"].at == T0 + 1
    assert mt.feed("some unrelated line") is None
    assert mt.last_lines[-1] == "some unrelated line"


# --- the keyed table ------------------------------------------------------------------------------


def _apply_all(table_rows: dict, diffs: list[RowDiff]) -> None:
    """What the widget does with the diffs."""
    for d in diffs:
        if d.op == "add":
            assert d.key not in table_rows, f"duplicate row {d.key}"
            table_rows[d.key] = dict(d.cells)
        elif d.op == "update":
            assert d.key in table_rows, f"update of a missing row {d.key}"
            table_rows[d.key].update(d.cells)
        elif d.op == "remove":
            assert d.key in table_rows, f"remove of a missing row {d.key}"
            del table_rows[d.key]


def test_table_diffs_carry_only_changed_cells():
    table = PodTable(clock=lambda: T0 + 130)
    diffs = table.apply("ADDED", downloading(name="p1"))
    assert diffs[0].op == "add" and diffs[0].cells["stage"] == "Init:0/1"
    assert table.apply("MODIFIED", downloading(name="p1", rv="2")) == []  # nothing visible changed
    diffs = table.apply("MODIFIED", initialized(name="p1", rv="3"))
    assert [d.op for d in diffs] == ["update"]
    assert "node" not in diffs[0].cells and "name" not in diffs[0].cells
    assert diffs[0].cells["stage"] == "PodInitializing"


def test_table_stays_right_across_resyncs_without_duplicate_or_missing_rows():
    now = [T0 + 100]
    table = PodTable(clock=lambda: now[0])
    shown: dict = {}
    _apply_all(shown, table.resync([make_pod(name="p1"), make_pod(name="p2"), make_pod(name="p3")]))
    assert sorted(shown) == ["rhaii-inference/p1", "rhaii-inference/p2", "rhaii-inference/p3"]
    _apply_all(shown, table.apply("MODIFIED", downloading(name="p1")))
    _apply_all(shown, table.apply("DELETED", make_pod(name="p3")))
    _apply_all(shown, table.apply("DELETED", make_pod(name="p3")))  # repeated: no-op
    # a late MODIFIED of the deleted pod (same uid) must not resurrect it
    _apply_all(shown, table.apply("MODIFIED", make_pod(name="p3", rv="9")))
    assert "rhaii-inference/p3" not in shown
    # watch expired: re-list. p2 vanished meanwhile, p4 is new, p1 progressed, ADDED replays are updates
    _apply_all(shown, table.resync([starting(name="p1"), make_pod(name="p4")]))
    assert sorted(shown) == ["rhaii-inference/p1", "rhaii-inference/p4"]
    _apply_all(shown, table.apply("ADDED", make_pod(name="p4")))  # replayed ADDED: no duplicate
    _apply_all(shown, table.resync([starting(name="p1"), make_pod(name="p4")]))  # identical relist: no diffs
    assert sorted(shown) == sorted(table.keys()) and len(table) == 2
    assert shown == dict(table.rows())
    # a pod re-created with the same name but a new uid is a new row state, not ignored
    _apply_all(shown, table.apply("DELETED", make_pod(name="p4")))
    _apply_all(shown, table.apply("ADDED", make_pod(name="p4", uid="uid-new")))
    assert "rhaii-inference/p4" in shown and table.pod("rhaii-inference/p4")["metadata"]["uid"] == "uid-new"


def test_tick_updates_only_time_cells_and_severity():
    now = [T0 + 100]
    table = PodTable(clock=lambda: now[0])
    table.apply("ADDED", make_pod(name="p1"))
    now[0] = T0 + 400
    diffs = table.tick()
    assert len(diffs) == 1 and set(diffs[0].cells) == {"in_stage", "severity"}
    assert diffs[0].cells["severity"] == "amber"


def test_log_lines_fill_the_milestone_cell():
    table = PodTable(clock=lambda: T0 + 300)
    table.apply("ADDED", starting(name="p1"))
    assert table.feed_log("rhaii-inference/p1", "nothing special") == []
    diffs = table.feed_log("rhaii-inference/p1", VLLM_LOG[2][1], ts=T0 + 230)
    assert diffs[0].cells == {"milestone": "KV cache allocated (3,145,728 tokens)"}
    assert table.feed_log("rhaii-inference/nope", VLLM_LOG[2][1]) == []


def test_watch_event_objects_and_filters():
    from types import SimpleNamespace

    table = PodTable(clock=lambda: T0, pod_filter=lambda p: p["metadata"]["name"] != "skip")
    table.apply_watch_event(SimpleNamespace(type="RESYNC", objects=[make_pod(name="a"), make_pod(name="skip")]))
    assert table.keys() == ["rhaii-inference/a"]
    table.apply_watch_event(SimpleNamespace(type="DELETED", obj=make_pod(name="a")))
    assert len(table) == 0


def test_table_refines_whole_second_timestamps_with_when_the_watch_saw_the_stage():
    # at a simulated speed of 100, the API's whole-second startedAt is up to 100 guide seconds off
    now = [T0 + 170.6]
    table = PodTable(clock=lambda: now[0], time_scale=100.0)
    table.apply("ADDED", starting(name="p1", started=170))
    now[0] = T0 + 171.0
    table.tick()
    assert table.life("rhaii-inference/p1").seconds_in_stage == pytest.approx(40.0)
    assert classify(starting(started=170), now=T0 + 171.0, time_scale=100.0).seconds_in_stage == pytest.approx(100.0)
    # a pod first seen long after it entered its stage keeps the API's time
    table.apply("ADDED", starting(name="p2", started=100))
    assert table.life("rhaii-inference/p2").seconds_in_stage == pytest.approx(7100.0)
