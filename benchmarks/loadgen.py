"""Benchmark the load generator itself (rhaii_tui/loadtest/engine.py).

Goals (BENCHMARKS.md, "Load generator"):
  1. open loop sustains >= 1,000 req/s against a zero-latency server with schedule delay p50 < 5 ms;
  2. at 25 req/s it adds <= 1 ms to a request's p50 (against a 100 ms server: e2e p50 - 100 ms).

Layout, as in production: the server runs in its own process, the engine runs in its own process
through `run_in_subprocess()` (spawn), this script only orchestrates. On a 2-core machine that is
one core for the server, one for the load generator.

    python benchmarks/loadgen.py                  # full run (~2 min)
    python benchmarks/loadgen.py --duration 5 --rates 1000 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rhaii_tui.loadtest.engine import LoadSpec, run_in_subprocess  # noqa: E402

BODY = json.dumps({
    "id": "cmpl-bench", "object": "text_completion", "created": 0, "model": "/mnt/models",
    "choices": [{"index": 0, "text": " Bonjour le monde", "finish_reason": "length"}],
    "usage": {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30}}).encode()


def _server(q, delay_s: float) -> None:
    """A minimal OpenAI-shaped server: answers after exactly `delay_s` (0 = at once)."""
    from aiohttp import web

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        if delay_s > 0:
            deadline = time.perf_counter() + delay_s
            await asyncio.sleep(delay_s - 0.0025)    # asyncio wakes 1-2 ms late: finish precisely
            while time.perf_counter() < deadline:
                await asyncio.sleep(0)
        return web.Response(body=BODY, content_type="application/json")

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/bench/svc/v1/completions", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
        await site.start()
        q.put(f"http://127.0.0.1:{runner.addresses[0][1]}/bench/svc")
        await asyncio.Event().wait()

    asyncio.run(main())


def start_server(delay_s: float):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_server, args=(q, delay_s), daemon=True)
    p.start()
    return p, q.get(timeout=30)


def raw_floor_ms(url: str, delay_s: float, n: int = 300, interval_s: float = 0.04) -> float:
    """The machine's floor: a blocking raw-socket HTTP/1.1 client (no asyncio, no aiohttp), one
    keep-alive connection, `n` requests at 25/s; p50 of (e2e - server delay). What any client on
    this machine pays for two loopback hops and two process wake-ups."""
    import socket
    import statistics
    from urllib.parse import urlsplit

    u = urlsplit(url)
    body = b'{"model": "/mnt/models", "prompt": "x", "max_tokens": 10}'
    req = (f"POST {u.path}/v1/completions HTTP/1.1\r\nHost: {u.netloc}\r\nContent-Type: application/json\r\n"
           f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    s = socket.create_connection((u.hostname, u.port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    out = []
    try:
        for i in range(n + 10):
            t = time.perf_counter()
            s.sendall(req)
            buf = b""
            while True:
                buf += s.recv(65536)
                head, sep, rest = buf.partition(b"\r\n\r\n")
                if sep:
                    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length"))
                    if len(rest) >= length:
                        break
            if i >= 10:
                out.append((time.perf_counter() - t - delay_s) * 1000)
            time.sleep(max(0.0, interval_s - (time.perf_counter() - t)))
    finally:
        s.close()
    return statistics.median(out)


def machine() -> str:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import aiohttp

    return (f"{os.cpu_count()} vCPU ({cpu}), {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, aiohttp {aiohttp.__version__}")


def row(label: str, r) -> dict:
    sd = r.schedule_delay_ms
    return {
        "run": label, "requested": r.requested_rate, "achieved": r.achieved_rate, "requests": r.requests,
        "errors": r.requests - r.ok, "sched_p50": sd.p50 if sd else None, "sched_p99": sd.p99 if sd else None,
        "e2e_p50": r.latency_ms.p50, "e2e_p99": r.latency_ms.p99, "service_p50": r.service_ms.p50,
        "client_cpu_pct": round(100 * r.client_cpu_s / max(r.elapsed_s, 1e-9), 1),
    }


def fmt(v, nd=2):
    return "-" if v is None else (f"{v:.{nd}f}" if isinstance(v, float) else str(v))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per open-loop run (default 10)")
    ap.add_argument("--rates", default="500,1000,1500,2000", help="open-loop rates against the zero-latency server")
    ap.add_argument("--slow-duration", type=float, default=20.0, help="seconds of the 25 req/s run (default 20)")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    args = ap.parse_args()
    rates = [float(x) for x in args.rates.split(",") if x]

    rows = []
    zero, zero_url = start_server(0.0)
    slow, slow_url = start_server(0.100)
    try:
        # warm the connection pools / server code paths once
        run_in_subprocess(LoadSpec(zero_url, mode="open", rate=200, duration_s=1))
        for rate in rates:
            r = run_in_subprocess(LoadSpec(zero_url, mode="open", rate=rate, duration_s=args.duration,
                                           timeout_s=10))
            rows.append(row(f"open {rate:g}/s, 0 ms server", r))
        r = run_in_subprocess(LoadSpec(zero_url, mode="closed", concurrency=10, duration_s=args.duration))
        rows.append(row("closed 10 in flight, 0 ms server", r) | {"achieved": r.throughput})
        r25 = run_in_subprocess(LoadSpec(slow_url, mode="open", rate=25, duration_s=args.slow_duration))
        rows.append(row("open 25/s, 100 ms server", r25))
        floor = raw_floor_ms(slow_url, 0.100, n=int(25 * min(args.slow_duration, 12)))
    finally:
        for p in (zero, slow):
            p.terminate()
            p.join(5)

    best = max((x for x in rows if x["run"].startswith("open") and "0 ms" in x["run"]
                and x["achieved"] >= 0.98 * (x["requested"] or 0) and (x["sched_p50"] or 99) < 5
                and x["errors"] == 0), key=lambda x: x["requested"], default=None)
    added = r25.latency_ms.p50 - 100.0
    goals = {
        "sustains >= 1000 req/s open loop with schedule delay p50 < 5 ms":
            bool(best and best["requested"] >= 1000),
        "adds <= 1 ms p50 at 25 req/s (e2e p50 - 100 ms)": added <= 1.0,
    }
    doc = {"machine": machine(), "command": "python " + " ".join(sys.argv), "rows": rows,
           "max_rate_meeting_goal": best["requested"] if best else None,
           "added_p50_ms_at_25": round(added, 3), "raw_socket_floor_p50_ms": round(floor, 3),
           "generator_share_p50_ms": round(added - floor, 3), "goals": goals}
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(f"Machine: {doc['machine']}\nCommand: {doc['command']}\n")
        print("| run | requested | achieved req/s | errors | sched delay p50 / p99 ms | e2e p50 / p99 ms "
              "| service p50 ms | client CPU % |")
        print("|---|---|---|---|---|---|---|---|")
        for x in rows:
            print(f"| {x['run']} | {fmt(x['requested'], 0)} | {fmt(x['achieved'], 1)} | {x['errors']} "
                  f"| {fmt(x['sched_p50'])} / {fmt(x['sched_p99'])} | {fmt(x['e2e_p50'])} / {fmt(x['e2e_p99'])} "
                  f"| {fmt(x['service_p50'])} | {fmt(x['client_cpu_pct'], 0)} |")
        print(f"\nAdded p50 at 25 req/s (e2e p50 - 100 ms): {added:.3f} ms")
        print(f"Machine floor (blocking raw-socket client, same server): {floor:.3f} ms; "
              f"the generator's own share: {added - floor:.3f} ms")
        for g, ok in goals.items():
            print(f"{'PASS' if ok else 'FAIL'}  {g}")
    return 0 if all(goals.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
