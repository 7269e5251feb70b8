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
