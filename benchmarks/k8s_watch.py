"""Kubernetes API emulator: watch fan-out and log follow throughput.

    python benchmarks/k8s_watch.py [--rate 500] [--seconds 10] [--watchers 3] [--follows 3]
                                   [--log-rate 200] [--tls] [--json]

The emulated API server (KubeApiServer over a Store and a LogBook) runs in a child process with a
producer on its event loop, as in `rhaii-tui sim serve`: it updates pod objects (realistic pods,
~2 KB of JSON each) at `--rate` events/s (0 = as fast as it can) and appends `--log-rate`
lines/s to each followed container. The parent process is the client side: `--watchers` raw
watch streams on the pods (aiohttp, JSON lines parsed like the kubernetes client does) and
`--follows` `log?follow=true` streams. Every event carries its send time, so end-to-end latency
(store write -> parsed by the client) is measured, as well as stalls (the longest gap between
two events seen by a watcher).

Goal: >= 500 events/s fanned out to 3 watchers with 3 log follows, no stall > 0.5 s,
p99 latency < 250 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import pct  # noqa: E402

N_PODS = 50


def _pod(i: int) -> dict:
    ts = "2026-01-01T00:00:00Z"
    name = f"vllm-{i:03d}"
    return {
        "metadata": {"name": name, "namespace": "bench", "labels": {"app": "vllm", "replica": str(i)},
                     "annotations": {"bench/sent": "0"}},
        "spec": {"nodeName": f"gke-tpu-{i % 3}", "containers": [{
            "name": "vllm", "image": "registry.redhat.io/rhaii/vllm-tpu:3.2",
            "args": ["--model=Qwen/Qwen2.5-3B-Instruct", "--enable-prefix-caching", "--max-model-len=8192"],
            "env": [{"name": f"VAR_{j}", "value": f"value-{j}"} for j in range(8)],
            "ports": [{"containerPort": 8000, "name": "http", "protocol": "TCP"}],
            "resources": {"limits": {"google.com/tpu": "4"}, "requests": {"google.com/tpu": "4"}}}]},
        "status": {"phase": "Running", "podIP": f"10.8.0.{i}", "startTime": ts,
                   "conditions": [{"type": t, "status": "True", "lastTransitionTime": ts}
                                  for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")],
                   "containerStatuses": [{"name": "vllm", "image": "registry.redhat.io/rhaii/vllm-tpu:3.2",
                                          "imageID": "sha256:0123", "ready": True, "restartCount": 0,
                                          "state": {"running": {"startedAt": ts}}}]},
    }


def server_main(args, port_q: mp.Queue, stats_q: mp.Queue) -> None:
    from rhaii_tui.sim.kube import KubeApiServer
    from rhaii_tui.sim.logs import LogBook
    from rhaii_tui.sim.store import Store
    from rhaii_tui.sim.tls import make_tls

    async def main() -> None:
        store, logs = Store(), LogBook()
        store.create(store.type_for("namespaces"), {"metadata": {"name": "bench"}})
        pods = store.type_for("pods")
        for i in range(N_PODS):
            store.create(pods, _pod(i))
        tls = make_tls() if args.tls else None
        srv = KubeApiServer(store, logs, token="bench", tls=tls)
        port = await srv.start("127.0.0.1", 0)
        port_q.put((port, tls.ca_pem if tls else None))
        await asyncio.sleep(args.warmup)  # clients connect

        loop = asyncio.get_running_loop()
        t0 = loop.time()
        end = t0 + args.seconds
        sent = 0
        log_sent = 0
        log_period = 1.0 / args.log_rate if args.log_rate else None
        next_log = t0

        def touch(i: int) -> None:
            def fn(o):
                o["metadata"]["annotations"]["bench/sent"] = repr(time.time())
            store.mutate(pods, "bench", f"vllm-{i % N_PODS:03d}", fn)

        while loop.time() < end:
            now = loop.time()
            if args.rate:
                due = int((now - t0) * args.rate)
                while sent < due:
                    touch(sent)
                    sent += 1
            else:
                for _ in range(50):
                    touch(sent)
                    sent += 1
            if log_period:
                while next_log <= now:
                    for f in range(args.follows):
                        logs.append("bench", f"vllm-{f:03d}", "vllm", f"{time.time()!r} INFO step {log_sent}")
                    log_sent += 1
                    next_log += log_period
            await asyncio.sleep(0.002 if args.rate else 0)
        elapsed = loop.time() - t0
        for f in range(args.follows):
            logs.terminate("bench", f"vllm-{f:03d}", "vllm")
        await asyncio.sleep(0.5)
        stats_q.put({"sent": sent, "elapsed": elapsed, "log_lines_per_follow": log_sent})
        await asyncio.sleep(args.seconds + 5)  # the parent stops us
        await srv.stop()

    asyncio.run(main())


async def clients(args, port: int, ca_pem: str | None) -> dict:
    import ssl

    import aiohttp

    scheme = "https" if ca_pem else "http"
    base = f"{scheme}://127.0.0.1:{port}"
    ssl_ctx = ssl.create_default_context(cadata=ca_pem) if ca_pem else None
    headers = {"Authorization": "Bearer bench"}
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)

    async with aiohttp.ClientSession(headers=headers, timeout=timeout,
                                     connector=aiohttp.TCPConnector(ssl=ssl_ctx, limit=0)) as s:
        async with s.get(f"{base}/api/v1/namespaces/bench/pods") as r:
            rv = (await r.json())["metadata"]["resourceVersion"]

        async def watcher(idx: int) -> dict:
            lat: list[float] = []
            gaps: list[float] = []
            last = None
            n = 0
            url = (f"{base}/api/v1/namespaces/bench/pods?watch=true&resourceVersion={rv}"
                   f"&timeoutSeconds={int(args.warmup + args.seconds + 2)}")
            async with s.get(url) as r:
                async for raw in r.content:
                    ev = json.loads(raw)
                    now = time.time()
                    if ev["type"] != "MODIFIED":
                        continue
                    n += 1
                    lat.append(now - float(ev["object"]["metadata"]["annotations"]["bench/sent"]))
                    if last is not None:
                        gaps.append(now - last)
                    last = now
            return {"events": n, "lat": lat, "max_gap": max(gaps) if gaps else 0.0}

        async def follower(idx: int) -> dict:
            lat: list[float] = []
            n = 0
            url = f"{base}/api/v1/namespaces/bench/pods/vllm-{idx:03d}/log?follow=true"
            async with s.get(url) as r:
                async for raw in r.content:
                    n += 1
                    lat.append(time.time() - float(raw.split(b" ", 1)[0]))
            return {"lines": n, "lat": lat}

        tasks = [asyncio.create_task(watcher(i)) for i in range(args.watchers)]
        tasks += [asyncio.create_task(follower(i)) for i in range(args.follows)]
        res = await asyncio.gather(*tasks)
    return {"watchers": res[:args.watchers], "follows": res[args.watchers:]}




def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=500, help="pod updates per second (0 = as fast as possible)")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--watchers", type=int, default=3)
    ap.add_argument("--follows", type=int, default=3)
    ap.add_argument("--log-rate", type=float, default=200, help="log lines per second per followed container")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--tls", action="store_true", help="HTTPS with the emulator's CA (as the wizard connects)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    ctx = mp.get_context("spawn")
    port_q, stats_q = ctx.Queue(), ctx.Queue()
    proc = ctx.Process(target=server_main, args=(args, port_q, stats_q), daemon=True)
    proc.start()
    try:
        port, ca = port_q.get(timeout=30)
        res = asyncio.run(clients(args, port, ca))
        stats = stats_q.get(timeout=30)
    finally:
        proc.terminate()
        proc.join(5)

    produced = stats["sent"] / stats["elapsed"]
    out = {
        "machine": f"{platform.machine()} {os.cpu_count()} CPU, Python {platform.python_version()}",
        "tls": args.tls, "target_rate": args.rate, "seconds": round(stats["elapsed"], 2),
        "produced_events_per_s": round(produced, 1),
        "watchers": [{"events": w["events"], "events_per_s": round(w["events"] / stats["elapsed"], 1),
                      "p50_ms": round(pct(w["lat"], 50) * 1000, 1), "p99_ms": round(pct(w["lat"], 99) * 1000, 1),
                      "max_ms": round(max(w["lat"] or [0]) * 1000, 1), "max_gap_ms": round(w["max_gap"] * 1000, 1)}
                     for w in res["watchers"]],
        "follows": [{"lines": f["lines"], "expected": stats["log_lines_per_follow"],
                     "p99_ms": round(pct(f["lat"], 99) * 1000, 1)} for f in res["follows"]],
    }
    out["delivered_events_per_s_total"] = round(sum(w["events"] for w in res["watchers"]) / stats["elapsed"], 1)
    out["all_events_delivered"] = all(w["events"] == stats["sent"] for w in res["watchers"])
    out["all_log_lines_delivered"] = all(f["lines"] == stats["log_lines_per_follow"] for f in res["follows"])
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"machine: {out['machine']}  tls={args.tls}")
    print(f"produced: {stats['sent']} pod updates in {out['seconds']} s = {out['produced_events_per_s']} events/s "
          f"(target {'max' if not args.rate else args.rate})")
    for i, w in enumerate(out["watchers"]):
        print(f"watcher {i}: {w['events']} events ({w['events_per_s']}/s) latency p50 {w['p50_ms']} ms "
              f"p99 {w['p99_ms']} ms max {w['max_ms']} ms, longest gap {w['max_gap_ms']} ms")
    for i, f in enumerate(out["follows"]):
        print(f"follow {i}: {f['lines']}/{f['expected']} lines, latency p99 {f['p99_ms']} ms")
    print(f"delivered to all watchers: {out['delivered_events_per_s_total']} events/s; "
          f"complete: events {out['all_events_delivered']}, logs {out['all_log_lines_delivered']}")


if __name__ == "__main__":
    main()
