"""Operate: rolling image update and rollback (`update_image`, `rollback_image`)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ... import manifests as m
from ...cloud.gke import CloudError
from ..podlife import classify, fmt_duration
from .common import (
    FAIL_GRACE, KSERVE_TIMEOUT, K_IMAGES, LLMISVC_KIND, OpEvent, OpResult, READY_TIMEOUT, Runner, _Failed,
    _cond, _containers, _main_index, _md, _name, _owner_uid, _ready, _remember_config, _revision, _rs_image,
    _run, _scheduled, _terminating, _unschedulable, image_tag, llmisvc_image, pod_image, resolve_image,
    spec_replicas,
)
from .status import workload_selector

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# rolling image update
# --------------------------------------------------------------------------------------------


def _set_image(run: Runner, image: str) -> None:
    """JSON patch of the main container's image (the test op guards the index)."""
    isvc = run.isvc()
    if isvc is None:
        raise _Failed(f"{run.ctx.cfg.service} is not deployed.", "Deploy it in step 5.")
    cs = _containers((isvc.get("spec") or {}).get("template"))
    i = _main_index(cs)
    if i is None:
        raise _Failed("The LLMInferenceService has no container to update.", "Re-apply it in step 5.")
    ops = [{"op": "test", "path": f"/spec/template/containers/{i}/name", "value": cs[i].get("name")},
           {"op": "replace", "path": f"/spec/template/containers/{i}/image", "value": image}]
    run.patch(m.LLMISVC_API_VERSION, LLMISVC_KIND, run.ctx.cfg.service, ops, "application/json-patch+json")


@dataclass
class _Rollout:
    """One look at the workload Deployment, its ReplicaSets and pods."""

    deployment: dict | None
    target: dict | None               # the ReplicaSet of the Deployment's current template
    old: list[dict]                   # the others still holding replicas or pods
    pods_by_rs: dict[str, list[dict]]

    def live(self, rs: Mapping) -> list[dict]:
        return [p for p in self.pods_by_rs.get(_md(rs).get("uid"), []) if not _terminating(p)]

    def ready(self, rs: Mapping) -> int:
        return sum(1 for p in self.live(rs) if _ready(p))

    @property
    def terminating(self) -> int:
        return sum(1 for ps in self.pods_by_rs.values() for p in ps if _terminating(p))


def _look(run: Runner, image: str) -> _Rollout | None:
    """None while the Deployment does not carry `image` yet (KServe has not caught up)."""
    cfg = run.ctx.cfg
    kube = run.ctx.kube()
    dep = kube.get("apps/v1", "Deployment", m.workload_deployment_name(cfg.service), cfg.namespace)
    if dep is None:
        return None
    if pod_image(((dep.get("spec") or {}).get("template") or {})) != image:
        return None
    if (dep.get("status") or {}).get("observedGeneration") != _md(dep).get("generation"):
        return None
    uid = _md(dep).get("uid")
    rss = [r for r in kube.list("apps/v1", "ReplicaSet", cfg.namespace, label_selector=workload_selector(cfg))
           if _owner_uid(r) == uid]
    if not rss:
        return None
    rss.sort(key=_revision)
    target = rss[-1]
    if _rs_image(target) != image:
        return None
    pods = run.pods()
    by: dict[str, list[dict]] = {}
    for p in pods:
        by.setdefault(_owner_uid(p) or "", []).append(p)
    old = [r for r in rss[:-1] if int((r.get("spec") or {}).get("replicas") or 0) > 0
           or by.get(_md(r).get("uid"))]
    return _Rollout(dep, target, old, by)


def _scale_rs(run: Runner, rs: Mapping, n: int) -> None:
    run.patch("apps/v1", "ReplicaSet", _name(rs), {"spec": {"replicas": int(n)}}, "application/merge-patch+json")


def _drive(run: Runner, image: str, n: int, *, ready_timeout: float, fail_grace: float,
           allow_downtime: bool, phase: str = "rollout") -> None:
    """Drive the Deployment to n Ready replicas on `image`, one node at a time (module docstring).
    Raises _Failed when a new replica fails or is not Ready in time."""
    tag = image_tag(image)
    kserve_deadline = time.monotonic() + run.wall(KSERVE_TIMEOUT)
    last_progress = time.monotonic()
    progress_key: tuple = ()
    stuck_after = run.wall(ready_timeout * 1.5)
    while True:
        run.check_stop()
        r = _look(run, image)
        if r is None:
            run.say(phase, f"Waiting for KServe to carry {tag} to the Deployment...")
            if time.monotonic() > kserve_deadline:
                raise _Failed(f"KServe did not update Deployment {m.workload_deployment_name(run.ctx.cfg.service)} "
                              f"to {tag} in time.", "Check the KServe controller (step 4).", kserve=True)
            run.sleep()
            continue
        assert r.target is not None
        new_live = r.live(r.target)
        new_ready = r.ready(r.target)
        old_live = sum(len(r.live(x)) for x in r.old)
        old_ready = sum(r.ready(x) for x in r.old)
        others = ", ".join(sorted({image_tag(_rs_image(x)) for x in r.old}))
        run.say(phase, f"{new_ready}/{n} Ready on {tag}"
                + (f"; {old_ready} Ready on {others}" if others else "")
                + (f" ({old_live - old_ready} not Ready)" if old_live > old_ready else "")
                + (f"; {r.terminating} terminating" if r.terminating else "") + ".",
                ready=new_ready + old_ready, wanted=n)
        if new_ready >= n and old_live == 0 and not r.terminating:
            return
        key = (new_ready, old_live, len(new_live), r.terminating)
        if key != progress_key:
            progress_key, last_progress = key, time.monotonic()
        elif time.monotonic() - last_progress > stuck_after:
            raise _Failed(f"The rollout to {tag} made no progress for {fmt_duration(stuck_after * run.time_scale)}.",
                          "Open step 5 for the pods' stages and diagnosis.")
        # a new replica that fails, or takes too long once it has a node
        now = time.time()
        for p in new_live:
            if not _scheduled(p) or _ready(p):
                continue
            life = classify(p, now=now, time_scale=run.time_scale)
            if life.is_failed and (life.restarts >= 2 or (life.seconds_in_stage or 0) >= fail_grace):
                why = f" ({life.reason})" if life.reason and life.reason != life.stage.value else ""
                raise _Failed(f"New replica {life.name} on {tag} is in {life.stage.value}{why} after "
                              f"{life.restarts} restart(s).",
                              "Check the image tag and the vLLM log of the new pod (step 5).", pod=life.name)
            since = _cond_time(p, "PodScheduled")
            if since is not None and (now - since) > run.wall(ready_timeout):
                raise _Failed(f"New replica {life.name} on {tag} was not Ready {fmt_duration(ready_timeout)} "
                              f"after it got a node (now {life.stage.value}).",
                              "Check the vLLM log of the new pod (step 5); a cold XLA compile can take long: "
                              "raise the timeout.", pod=life.name)
        # old pods that are not Ready go at once (costs no availability)
        for rs in r.old:
            want_rs = int((rs.get("spec") or {}).get("replicas") or 0)
            ready_rs = r.ready(rs)
            if want_rs > ready_rs and len(r.live(rs)) > ready_rs:
                run.say(phase, f"Removing {len(r.live(rs)) - ready_rs} not-Ready pod(s) of {_name(rs)}.")
                _scale_rs(run, rs, ready_rs)
        # free a node for a new pod the scheduler cannot place, one at a time
        pending = [p for p in new_live if not _scheduled(p) and _unschedulable(p)]
        unready_placed = [p for p in new_live if _scheduled(p) and not _ready(p)]
        settled = not r.terminating and all(
            int((x.get("spec") or {}).get("replicas") or 0) == len(r.live(x)) for x in r.old) and \
            int((r.target.get("spec") or {}).get("replicas") or 0) == len(new_live)
        if pending and not unready_placed and settled:
            donors = [x for x in r.old if r.ready(x) > 0 and int((x.get("spec") or {}).get("replicas") or 0) > 0]
            total_ready = new_ready + old_ready
            if donors and (total_ready >= 2 or allow_downtime):
                rs = donors[0]   # oldest revision first
                cur = int((rs.get("spec") or {}).get("replicas") or 0)
                run.say(phase, f"Replacing one old replica ({total_ready - 1} stay Ready while the new one starts).")
                _scale_rs(run, rs, cur - 1)
            elif donors:
                run.say(phase, f"Waiting: only {total_ready} replica(s) Ready, none can be taken down.")
        run.sleep()


def _cond_time(obj: Mapping, ctype: str) -> float | None:
    from ..podlife import to_epoch

    c = _cond(obj, ctype)
    if not c or str(c.get("status")) != "True":
        return None
    return to_epoch(c.get("lastTransitionTime"))


def update_image(ctx: Any, tag_or_image: str, *, on_event: Callable[[OpEvent], None] | None = None,
                 stop: threading.Event | None = None, poll: float | None = None, auto_rollback: bool = True,
                 ready_timeout: float = READY_TIMEOUT, fail_grace: float = FAIL_GRACE,
                 allow_downtime: bool = False, action: str = "update-image") -> OpResult:
    """Roll the service to a new vLLM image, one replica at a time; roll back automatically when a
    new replica fails or is not Ready within `ready_timeout` guide seconds of getting a node."""
    run = Runner(ctx, on_event, stop, poll)

    def body() -> OpResult:
        isvc = run.isvc()
        if isvc is None:
            return OpResult(action, False, f"{ctx.cfg.service} is not deployed.", "Deploy it in step 5.",
                            changed=False)
        current = llmisvc_image(isvc)
        try:
            new = resolve_image(current, tag_or_image)
        except ValueError as e:
            return OpResult(action, False, str(e), "Give a tag like 3.3.0 or REGISTRY/PATH:TAG.", changed=False)
        n = spec_replicas(isvc) or 1
        pods = [p for p in run.pods() if not _terminating(p)]
        on_new = [p for p in pods if pod_image(p) == new and _ready(p)]
        if new == current and len(on_new) >= n and len(pods) == n:
            return OpResult(action, True, f"Already on {image_tag(new)}: {n} replica(s) Ready.", changed=False)
        ready_now = sum(1 for p in pods if _ready(p))
        if new != current:
            if n < 2 and not allow_downtime:
                return OpResult(action, False, "With one replica there is none left to serve while it is replaced.",
                                "Scale to 2 replicas first, or allow a short downtime (--allow-downtime).",
                                changed=False)
            if ready_now < n:
                return OpResult(action, False, f"Only {ready_now} of {n} replicas are Ready: the update waits for a "
                                "healthy service.", "Let the service become Ready (step 5 shows why not), "
                                "then update.", changed=False)
            history = [i for i in (ctx.saved() or {}).get(K_IMAGES) or [] if isinstance(i, str) and i != current]
            ctx.record(**{K_IMAGES: (history + [current])[-10:]})
            run.say("rollout", f"Updating {ctx.cfg.service} from {image_tag(current)} to {image_tag(new)}, "
                    f"one replica at a time ({n - 1} keep serving)...")
            _set_image(run, new)
        try:
            _drive(run, new, n, ready_timeout=ready_timeout, fail_grace=fail_grace, allow_downtime=allow_downtime)
        except _Failed as e:
            if not auto_rollback or new == current or e.data.get("kserve"):
                if e.data.get("kserve") and new != current:
                    _set_image(run, current)
                raise
            back = current or ""
            run.say("rollback", f"{e.message} Rolling back to {image_tag(back)}; the old replicas keep serving.")
            _set_image(run, back)
            try:
                _drive(run, back, n, ready_timeout=ready_timeout, fail_grace=fail_grace,
                       allow_downtime=allow_downtime, phase="rollback")
            except _Failed as e2:
                raise _Failed(f"{e.message} The rollback to {image_tag(back)} did not finish either: {e2.message}",
                              e2.fix) from None
            return OpResult(action, False, f"Rolled back to {image_tag(back)}: {e.message} {n} replica(s) Ready "
                            f"on {image_tag(back)}.", e.fix, rolled_back=True,
                            data={"failed_image": new, "image": back, **e.data})
        cfg = _remember_config(ctx, image=new)
        return OpResult(action, True, f"{n} replica(s) Ready on {image_tag(new)} (was {image_tag(current)}).",
                        config=cfg, data={"image": new, "previous_image": current})
    return _run(action, run, body)


def previous_image(ctx: Any) -> str | None:
    """The image to roll back to: the newest older ReplicaSet's (the cluster's history), else the
    state file's."""
    cfg = ctx.cfg
    try:
        kube = ctx.kube()
        isvc = kube.get(m.LLMISVC_API_VERSION, LLMISVC_KIND, cfg.service, cfg.namespace)
        current = llmisvc_image(isvc)
        dep = kube.get("apps/v1", "Deployment", m.workload_deployment_name(cfg.service), cfg.namespace)
        uid = _md(dep).get("uid") if dep else None
        rss = [r for r in kube.list("apps/v1", "ReplicaSet", cfg.namespace, label_selector=workload_selector(cfg))
               if uid and _owner_uid(r) == uid]
    except CloudError:
        return None
    for r in sorted(rss, key=_revision, reverse=True):
        img = _rs_image(r)
        if img and img != current:
            return img
    history = [i for i in (ctx.saved() or {}).get(K_IMAGES) or [] if isinstance(i, str) and i != current]
    return history[-1] if history else None


def rollback_image(ctx: Any, **kw: Any) -> OpResult:
    """Roll back to the previous image (same one-at-a-time rollout)."""
    prev = previous_image(ctx)
    if not prev:
        run = Runner(ctx, kw.get("on_event"))
        res = OpResult("rollback-image", False, "No previous image is known for this service.",
                       "Update the image to the one to go back to (a tag or REGISTRY/PATH:TAG).", changed=False)
        run.say("failed", res.summary)
        return res
    return update_image(ctx, prev, auto_rollback=False, action="rollback-image", **kw)
