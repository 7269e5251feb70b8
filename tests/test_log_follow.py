"""Step 5's log follows: a container that restarts is followed again (the retried run's lines and
milestones reach the pane)."""

from __future__ import annotations

import base64
import time
from pathlib import Path

from rhaii_tui.config import DeployConfig, StateStore
from rhaii_tui.secrets import HF_KEY, HF_SECRET_NAME, hf_secret_from_form, pull_secret_from_form
from rhaii_tui.steps import deploy, operators
from rhaii_tui.steps import secrets as secrets_step
from rhaii_tui.steps.base import Status
from rhaii_tui.steps.context import StepContext
from rhaii_tui.steps.podlife import INIT_CONTAINER

SPEED = 2000
GOOD_TOKEN = "hf_" + "x" * 34


def make_ctx(world, tmp_path: Path) -> StepContext:
    cfg = DeployConfig(project="rhaii-demo-project", zone="europe-west4-a", cluster="rhaii-tpu-scaleout-cluster",
                       replicas=1)
    return StepContext(cfg, world.profile(), StateStore(tmp_path / "state"))


def poll(fn, until, timeout=60.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        res = fn()
        if until(res) or time.monotonic() > deadline:
            return res
        time.sleep(interval)


def set_hf_token(ctx, token: str) -> None:
    session = ctx.kube()
    session.core.patch_namespaced_secret(HF_SECRET_NAME, ctx.cfg.namespace,
                                         {"data": {HF_KEY: base64.b64encode(token.encode()).decode()}})


def init_restarts(pod) -> int:
    return next((int(c.get("restartCount") or 0) for c in (pod.get("status") or {}).get("initContainerStatuses") or []
                 if c.get("name") == INIT_CONTAINER), 0)


def test_the_retried_download_after_a_token_fix_reaches_the_follower(make_sim_world, tmp_path):
    world = make_sim_world("cluster-ready", speed=SPEED)
    ctx = make_ctx(world, tmp_path)
    operators.install(ctx)
    st = poll(lambda: operators.probe(ctx), lambda s: s.status in (Status.DONE, Status.FAILED))
    assert st.status is Status.DONE, st
    secrets_step.ensure_namespace(ctx)
    ctx.secrets.add(hf_secret_from_form(GOOD_TOKEN))
    ctx.secrets.add(pull_secret_from_form("someone", "not-a-real-password"))
    secrets_step.apply_secrets(ctx)
    set_hf_token(ctx, "not-a-token")  # Hugging Face answers 401: Init:CrashLoopBackOff

    w = deploy.DeployWatch(ctx).start()
    try:
        deploy.apply(ctx)
        session = ctx.kube()
        selector = deploy.workload_selector(ctx.cfg)
        pods = poll(lambda: session.list("v1", "Pod", ctx.cfg.namespace, label_selector=selector),
                    lambda ps: len(ps) == 1 and init_restarts(ps[0]) >= 1
                    and any("401" in x for x in w.last_lines(ps[0]["metadata"]["name"], INIT_CONTAINER)))
        assert len(pods) == 1 and init_restarts(pods[0]) >= 1, pods
        name = pods[0]["metadata"]["name"]
        assert any("401" in x for x in w.last_lines(name, INIT_CONTAINER))
        assert "download" not in w.milestones(name).reached

        set_hf_token(ctx, GOOD_TOKEN)  # the user fixes the token; the next restart downloads
        lines = poll(lambda: w.last_lines(name, INIT_CONTAINER),
                     lambda ls: any("Successfully copied" in x for x in ls))
        assert any("Successfully copied" in x for x in lines), lines[-5:]
        ms = poll(lambda: w.milestones(name), lambda m: "download" in m.reached, timeout=10)
        assert "download" in ms.reached
    finally:
        w.stop()


# --- a resumed follow starts at the last line's own timestamp ------------------------------------------


def test_a_resumed_follow_loses_no_line_when_the_local_clock_is_off(make_sim_world, monkeypatch):
    """The stream drops (here: quiet longer than the read timeout) while the container writes; the
    follow resumes from the last line's timestamp as the server wrote it (sinceTime), so a laptop
    clock an hour behind loses nothing."""
    import threading
    import time as real_time

    from rhaii_tui.cloud import kube
    from rhaii_tui.cloud.gke import Gke
    from rhaii_tui.cloud.kube import KubeSession, follow_logs

    class SkewedClock:  # this machine's clock is an hour behind the cluster's
        def __getattr__(self, name):
            return getattr(real_time, name)

        @staticmethod
        def time() -> float:
            return real_time.time() - 3600

    ns = "log-resume"
    world = make_sim_world("cluster-ready")
    info = Gke(world.profile(), "rhaii-demo-project", "europe-west4-a").get_cluster("rhaii-tpu-scaleout-cluster")
    session = KubeSession(world.profile(), info.access)
    try:
        session.ensure_namespace(ns)
        sim = world.sim()
        rt = world.call(lambda: sim.store.type_for("pods"))
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "talky", "namespace": ns},
               "spec": {"containers": [{"name": "main", "image": "x"}], "nodeSelector": {"test.example/none": "x"}},
               "status": {"phase": "Running", "containerStatuses": [
                   {"name": "main", "ready": True, "restartCount": 0, "image": "x", "imageID": "x",
                    "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}}

        def create():
            sim.store.create(rt, pod, ns)
            sim.store.mutate(rt, ns, "talky", lambda o: o.__setitem__("status", pod["status"]), subresource="status")

        world.call(create)
        now = real_time.time()
        world.call(lambda: sim.logs.append(ns, "talky", "main", "line 1", ts=now - 60))
        monkeypatch.setattr(kube, "time", SkewedClock())
        got: list[str] = []
        stop = threading.Event()
        wrote = threading.Event()
        resumed_after = [0]  # streams opened since line 2 was written

        def on_state(state: str) -> None:
            if state.startswith("reconnecting") and not wrote.is_set():
                # while disconnected, the container wrote a line (30 s ago by the cluster's clock)
                world.call(lambda: sim.logs.append(ns, "talky", "main", "line 2", ts=now - 30))
                wrote.set()
            elif state == "following" and wrote.is_set():
                resumed_after[0] += 1

        t = threading.Thread(target=follow_logs, args=(session.core, ns, "talky", "main", got.extend, stop),
                             kwargs={"on_state": on_state, "quiet_reconnect": 0.5, "backoff_min": 0.05},
                             daemon=True)
        t.start()
        deadline = real_time.monotonic() + 60
        while "line 2" not in got and resumed_after[0] < 2 and real_time.monotonic() < deadline:
            real_time.sleep(0.02)
        stop.set()
        t.join(10)
        assert wrote.is_set()
        assert got == ["line 1", "line 2"], got
    finally:
        session.close()
