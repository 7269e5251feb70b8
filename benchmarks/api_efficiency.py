"""API efficiency: requests per minute the wizard's watch machinery sends to the Kubernetes API while
it watches a steady deployment, against a polling baseline.

    python benchmarks/api_efficiency.py [--minutes 10] [--speed 1] [--json]

A "deployed" simulated world (3 Ready replicas, nothing changing) runs on a background loop in this
process (`sim.testing.run_world`). Three consumers watch it at the same time, each with its own
Kubernetes session (its own ApiClient, so every request is attributed to one of them):

- the step-5 pane, `steps.deploy.DeployWatch`: list-watch of the workload pods, the namespace's
  events, the nodes and the LLMInferenceService (`cloud.kube.ListWatcher`), plus a log follow of
  each pod's containers;
- the step-4 pane, `steps.operators.OperatorWatch`: list-watch of the pods of the operator
  namespaces and of the Gateway, and its CRD check (GETs of the six CRDs: every few seconds while one
  is missing or not Established, then every 5 min and when an operator pod comes or goes);
- the baseline, `kubectl get pods` every 2 s: a list of the workload pods every 2 s.

Requests are counted at the client (a wrapper around the kubernetes client's
`RESTClientObject.request`, one count per HTTP request; a long-lived watch or log follow is one
request however long it stays open). Time: the watch machinery's timers (watch timeoutSeconds 60 for
the step-5 pane, 240 for the step-4 pane, back-off, the CRD re-check) run in wall seconds, so the
benchmark runs at `--speed 1`, where a simulated minute is a wall minute. Goal: <= 2 requests per
minute per watched kind.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GOAL_PER_KIND = 2.0
_PATH_RE = re.compile(r"^/(?:api/v1|apis/[^/]+/[^/]+)(?:/namespaces/[^/]+)?/([a-z0-9.-]+)(?:/([^/?]+))?(?:/([a-z]+))?")


def classify(method: str, url: str) -> tuple[str, str]:
    """(kind, request type) from a Kubernetes API URL: type is watch | follow | list | get | other."""
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(url)
    q = parse_qs(parts.query)
    m = _PATH_RE.match(parts.path)
    if not m:
        return parts.path, "other"
    kind, name, sub = m.group(1), m.group(2), m.group(3)
    if kind == "namespaces" and name and sub is None:
        kind = "namespaces"
    if sub == "log":
        return f"{kind}/log", "follow" if q.get("follow", ["false"])[0].lower() == "true" else "get"
    if q.get("watch", ["false"])[0].lower() in ("true", "1"):
        return kind, "watch"
    if method == "GET":
        return kind, "get" if name else "list"
    return kind, method.lower()


class Counting:
    """Counts every request of the kubernetes client, per ApiClient (consumer)."""

    def __init__(self) -> None:
        self.counts: dict[str, Counter] = defaultdict(Counter)
        self.times: dict[str, list[tuple[float, str, str]]] = defaultdict(list)
        self.owner: dict[int, str] = {}
        self._lock = threading.Lock()
        self._orig = None

    def install(self) -> None:
        from kubernetes.client import rest

        orig = rest.RESTClientObject.request
        self._orig = orig
        counter = self

        def request(self_, method, url, *a, **kw):
            kind, rtype = classify(method, url)
            who = counter.owner.get(id(self_), "other")
            with counter._lock:
                counter.counts[who][(kind, rtype)] += 1
                counter.times[who].append((time.monotonic(), kind, rtype))
            return orig(self_, method, url, *a, **kw)

        rest.RESTClientObject.request = request

    def uninstall(self) -> None:
        from kubernetes.client import rest

        if self._orig is not None:
            rest.RESTClientObject.request = self._orig

    def claim(self, name: str, session) -> None:
        self.owner[id(session.api_client.rest_client)] = name


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="how long to watch (default 10)")
    ap.add_argument("--speed", type=float, default=1.0, help="simulated time factor (default 1)")
    ap.add_argument("--poll-every", type=float, default=2.0, help="the baseline's seconds between lists (default 2)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from rhaii_tui import manifests as m
    from rhaii_tui.config import DeployConfig
    from rhaii_tui.sim.testing import run_world
    from rhaii_tui.steps.context import StepContext
    from rhaii_tui.steps.deploy import DeployWatch
    from rhaii_tui.steps.operators import OperatorWatch

    counting = Counting()
    cfg = DeployConfig(project="rhaii-demo-project", zone="europe-west4-a", cluster="rhaii-tpu-scaleout-cluster")
    seconds = args.minutes * 60.0
    with tempfile.TemporaryDirectory() as tmp, run_world(tmp, scenario="deployed", speed=args.speed) as world:
        counting.install()
        try:
            ctxs = {name: StepContext(cfg, world.profile()) for name in ("deploy pane", "operators pane", "baseline")}
            for name, ctx in ctxs.items():
                counting.claim(name, ctx.kube())
            deploy = DeployWatch(ctxs["deploy pane"]).start()
            ops = OperatorWatch(ctxs["operators pane"]).start()
            stop = threading.Event()
            base = ctxs["baseline"].kube()
            selector = m.label_selector(m.workload_labels(cfg.service))

            def poll() -> None:
                while not stop.is_set():
                    base.core.list_namespaced_pod(cfg.namespace, label_selector=selector, _request_timeout=30)
                    stop.wait(args.poll_every)

            poller = threading.Thread(target=poll, daemon=True)
            poller.start()
            t0 = time.monotonic()
            time.sleep(5.0)  # the panes are listed and watching
            rows = deploy.rows()
            assert len(rows) == 3, rows
            assert ops.view().all_ready
            time.sleep(max(0.0, seconds - (time.monotonic() - t0)))
            elapsed = time.monotonic() - t0
            stop.set()
            deploy.stop()
            ops.stop()
            poller.join(5)
        finally:
            counting.uninstall()

    minutes = elapsed / 60.0
    warm = min(60.0, elapsed / 2)           # steady state: after the first minute (initial lists, log follows)
    steady_minutes = (elapsed - warm) / 60.0
    report: dict = {"minutes": round(minutes, 2), "steady_from_s": warm, "speed": args.speed,
                    "goal_per_kind_per_minute": GOAL_PER_KIND,
                    "machine": f"{platform.machine()}, {os.cpu_count()} CPU, Python {platform.python_version()}",
                    "consumers": {}}
    for name in ("deploy pane", "operators pane", "baseline"):
        c = counting.counts.get(name, Counter())
        kinds: dict[str, dict] = {}
        for (kind, rtype), n in sorted(c.items()):
            k = kinds.setdefault(kind, {"requests": 0, "by_type": {}})
            k["requests"] += n
            k["by_type"][rtype] = n
        steady = Counter(kind for t, kind, _ in counting.times.get(name, []) if t - t0 >= warm)
        for kind, k in kinds.items():
            k["per_minute"] = round(k["requests"] / minutes, 2)
            k["steady_per_minute"] = round(steady.get(kind, 0) / steady_minutes, 2)
            k["meets_goal"] = k["steady_per_minute"] <= GOAL_PER_KIND
        total = sum(c.values())
        report["consumers"][name] = {"requests": total, "per_minute": round(total / minutes, 2),
                                     "steady_per_minute": round(sum(steady.values()) / steady_minutes, 2),
                                     "kinds": kinds}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"watched a steady deployment for {minutes:.1f} min at speed {args.speed:g} ({report['machine']})")
    for name, r in report["consumers"].items():
        print(f"\n{name}: {r['requests']} requests, {r['per_minute']:.2f}/min overall, "
              f"{r['steady_per_minute']:.2f}/min after the first {warm:.0f} s")
        for kind, k in r["kinds"].items():
            types = ", ".join(f"{t} {n}" for t, n in k["by_type"].items())
            print(f"  {kind:<28} {k['requests']:>5}  {k['per_minute']:>7.2f}/min  steady {k['steady_per_minute']:>6.2f}/min"
                  f"  {'ok' if k['meets_goal'] else 'OVER GOAL':<9} ({types})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
