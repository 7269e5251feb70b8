"""The PoC report: what steps 9-11 found, in a form a field engineer can hand over.

- `run_checks(ctx, ...)` runs steps 9, 10 and 11 in order (blocking; a worker thread or a headless
  command) and returns a `PocRun` with the three results, `passed` and `exit_code` (0 only when
  everything passed, 1 otherwise) — the body of the headless `verify` command.
- `build_report(cfg, verify=..., performance=..., identity=..., environment=..., secrets=...)` ->
  a plain, JSON-serialisable dict: the config (never a secret), timings, every check with its
  evidence, the cache proof, the throughput runs with their per-second series, the comparison with
  the guide, and the verdicts. Known secret values (`secrets`) and anything shaped like a token
  (hf_..., "Bearer ...", registry auth) are redacted on the way in.
- `render_markdown(data)` -> Markdown, with text plots (Unicode sparklines of req/s and latency
  over time); `render_svg(run)` -> a small SVG chart of one throughput run.
- `write_report(path_base, data)` -> the paths written: `<base>.md`, `<base>.json`, and
  `<base>-throughput.svg` when there are throughput series. Files are 0644 and are scanned for
  secrets once more before they are written.

No Textual here.
"""

from __future__ import annotations

import base64
import json
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from . import __version__
from .steps.verify import CheckResult, now_iso

SPARK = "▁▂▃▄▅▆▇█"
REPORT_MODE = 0o644
_SECRET_KEYS = re.compile(r"(token|password|secret|authorization|auth|dockerconfig|api[_-]?key)$", re.I)
_SAFE_KEYS = {"cached_tokens", "prompt_tokens", "completion_tokens", "kv_cache_tokens", "prefix_tokens_est",
              "prompt_tokens_est", "cacheable_tokens_per_repeat", "total_tokens"}
_TOKEN_PATTERNS = (
    (re.compile(r"hf_[A-Za-z0-9]{8,}"), "hf_***"),
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"), r"\1***"),
    (re.compile(r"ya29\.[A-Za-z0-9._-]{10,}"), "ya29.***"),
)


class ReportError(Exception):
    """The report could not be written; the message says where and what to do."""


# --------------------------------------------------------------------------------------------
# secrets
# --------------------------------------------------------------------------------------------


def _variants(secrets: Iterable[str]) -> list[str]:
    """Each secret value, plus its base64 forms (a Secret's data and a dockerconfigjson carry them)."""
    out: set[str] = set()
    for s in secrets:
        if not s or len(s) < 4:
            continue
        out.add(s)
        for enc in (base64.b64encode(s.encode()).decode(), base64.b64encode(s.encode()).decode().rstrip("=")):
            if len(enc) >= 8:
                out.add(enc)
    return sorted(out, key=len, reverse=True)


def scrub_text(text: str, secrets: Iterable[str] = ()) -> str:
    for s in _variants(secrets):
        text = text.replace(s, "***")
    for rx, repl in _TOKEN_PATTERNS:
        text = rx.sub(repl, text)
    return text


def redact(obj: Any, secrets: Iterable[str] = ()) -> Any:
    """A copy of obj (dicts/lists/strings) without secret values: known values and token-shaped
    strings are replaced; values under secret-looking keys (token, password, authorization,
    headers...) are dropped to '<redacted>'."""
    vs = _variants(secrets)

    def walk(o: Any, key: str = "") -> Any:
        if isinstance(o, Mapping):
            out = {}
            for k, v in o.items():
                ks = str(k)
                if ks.lower() == "headers" and isinstance(v, Mapping):
                    out[ks] = {hk: "<redacted>" for hk in v}
                elif _SECRET_KEYS.search(ks) and ks not in _SAFE_KEYS and isinstance(v, str) and v:
                    out[ks] = "<redacted>"
                else:
                    out[ks] = walk(v, ks)
            return out
        if isinstance(o, (list, tuple)):
            return [walk(v, key) for v in o]
        if isinstance(o, str):
            t = o
            for s in vs:
                t = t.replace(s, "***")
            for rx, repl in _TOKEN_PATTERNS:
                t = rx.sub(repl, t)
            return t
        return o

    return walk(obj)


def secret_values(ctx: Any) -> list[str]:
    """The secret values this context knows (the step-3 inputs), to keep out of the report."""
    try:
        return list(ctx.secrets.values())
    except Exception:  # noqa: BLE001
        return []


# --------------------------------------------------------------------------------------------
# running 9-11 (the headless `verify` command's body)
# --------------------------------------------------------------------------------------------


@dataclass
class PocRun:
    verify: list[CheckResult]
    performance: Any            # steps.performance.PerformanceResult | None
    identity: Any               # steps.identity.IdentityResult | None
    started_at: str
    finished_at: str

    @property
    def verify_passed(self) -> bool:
        return bool(self.verify) and all(c.ok is True for c in self.verify)

    @property
    def passed(self) -> bool:
        return self.verify_passed and bool(self.performance and self.performance.passed) and \
            bool(self.identity and self.identity.passed)

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1


def run_checks(ctx: Any, perf_options: Any = None, *, on_line: Callable[[str], None] | None = None,
               stop: Any = None, skip_performance: bool = False) -> PocRun:
    """Steps 9, 10 and 11 in order (blocking). `on_line` gets one human-readable line per check or
    progress event. Step 10 runs even when step 9 failed (its result says why it fails too)."""
    from .steps.identity import run_identity
    from .steps.performance import PerfOptions, run_performance
    from .steps.verify import run_verify

    def say(text: str) -> None:
        if on_line is not None:
            try:
                on_line(text)
            except Exception:  # noqa: BLE001
                pass

    started = now_iso()
    say("Step 9: verify")
    checks = run_verify(ctx, lambda c: say(f"  [{c.mark}] {c.title}: {c.evidence}"))
    perf = None
    if not skip_performance:
        say("Step 10: cache routing and throughput")
        perf = run_performance(ctx, perf_options or PerfOptions(),
                               lambda e: say(f"  {e.message}") if e.kind != "throughput" or e.tick is None else None,
                               stop=stop)
    say("Step 11: model identity")
    ident = run_identity(ctx, lambda c: say(f"  [{c.mark}] {c.title}: {c.evidence}"))
    return PocRun(checks, perf, ident, started, now_iso())


# --------------------------------------------------------------------------------------------
# the report's data
# --------------------------------------------------------------------------------------------


def _checks_block(checks: list[CheckResult]) -> dict[str, Any]:
    ok = bool(checks) and all(c.ok is True for c in checks)
    ats = [c.at for c in checks if c.at]
    return {"passed": ok, "checks": [c.to_dict() for c in checks],
            "finished_at": now_iso(max(ats)) if ats else None}


def build_report(cfg: Any, *, verify: list[CheckResult] | None = None, performance: Any = None,
                 identity: Any = None, environment: str = "", secrets: Iterable[str] = (),
                 started_at: str | None = None, finished_at: str | None = None,
                 notes: Iterable[str] = ()) -> dict[str, Any]:
    """The report as a JSON-serialisable dict, with secrets redacted."""
    config = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
    derived = {}
    for k in ("region", "chips_needed", "model_repo", "target"):
        try:
            derived[k] = getattr(cfg, k)
        except Exception:  # noqa: BLE001
            pass
    results: dict[str, Any] = {}
    verdicts: dict[str, Any] = {}
    if verify is not None:
        results["verify"] = _checks_block(verify)
        verdicts["9 verify"] = "pass" if results["verify"]["passed"] else "fail"
    if performance is not None:
        results["performance"] = performance.to_dict()
        verdicts["10 cache routing and throughput"] = performance.status
    if identity is not None:
        results["identity"] = identity.to_dict()
        verdicts["11 model identity"] = "pass" if identity.passed else "fail"
    passed = bool(verdicts) and all(v == "pass" for v in verdicts.values())
    data = {
        "title": f"PoC report: {config.get('model', '')} on GKE TPU v6e",
        "generated_at": now_iso(),
        "tool": {"name": "rhaii-tui", "version": __version__},
        "environment": environment,
        "started_at": started_at,
        "finished_at": finished_at,
        "config": {**config, **derived},
        "verdict": {"passed": passed, "steps": verdicts},
        "results": results,  # steps 9-11's checks, cache proof and throughput; "steps" is the whole run's 11
        "notes": list(notes),
    }
    return redact(data, secrets)


def build_report_from_run(ctx: Any, run: PocRun, notes: Iterable[str] = ()) -> dict[str, Any]:
    return build_report(ctx.cfg, verify=run.verify, performance=run.performance, identity=run.identity,
                        environment=getattr(ctx.profile, "label", ""), secrets=secret_values(ctx),
                        started_at=run.started_at, finished_at=run.finished_at, notes=notes)


# --------------------------------------------------------------------------------------------
# text plots
# --------------------------------------------------------------------------------------------


def sparkline(values: Iterable[float | None], lo: float | None = None, hi: float | None = None) -> str:
    """'▁▃▅█' for a series (None -> space). lo/hi fix the scale (default: the series' min/max)."""
    vals = list(values)
    nums = [v for v in vals if v is not None]
    if not nums:
        return ""
    a = min(nums) if lo is None else lo
    b = max(nums) if hi is None else hi
    span = b - a
    out = []
    for v in vals:
        if v is None:
            out.append(" ")
        elif span <= 0:
            out.append(SPARK[len(SPARK) // 2] if v else SPARK[0])
        else:
            i = int(round((min(max(v, a), b) - a) / span * (len(SPARK) - 1)))
            out.append(SPARK[i])
    return "".join(out)


def _series(run: Mapping[str, Any], key: str) -> list[float | None]:
    """Per-second values of one throughput run, without the buckets that lie wholly in the warm-up."""
    res = run.get("result") or {}
    warm = float((res.get("spec") or {}).get("warmup_s") or 0.0)
    return [b.get(key) for b in res.get("buckets") or [] if float(b.get("t_s") or 0.0) > warm]


def render_svg(run: Mapping[str, Any], width: int = 640, height: int = 200) -> str:
    """A small SVG chart of one throughput run: req/s (solid) and P50 latency (dashed) per second."""
    rps = [v or 0.0 for v in _series(run, "rps")]
    p50 = [v for v in _series(run, "p50_ms")]
    pad = 36
    w, h = width - 2 * pad, height - 2 * pad
    n = max(len(rps), 2)

    def pts(vals: list[float | None], top: float) -> str:
        top = top or 1.0
        return " ".join(f"{pad + i * w / (n - 1):.1f},{pad + h - (v / top) * h:.1f}"
                        for i, v in enumerate(vals) if v is not None)

    top_r = max(rps or [1.0]) * 1.1 or 1.0
    top_l = max([v for v in p50 if v is not None] or [1.0]) * 1.1 or 1.0
    label = _xml(str(run.get("label", "")))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'font-family="monospace" font-size="11">\n'
            f'<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>\n'
            f'<text x="{pad}" y="16">{label}: req/s (solid, max {top_r / 1.1:.1f}) and P50 ms (dashed, max '
            f'{top_l / 1.1:.0f})</text>\n'
            f'<line x1="{pad}" y1="{pad + h}" x2="{pad + w}" y2="{pad + h}" stroke="#888"/>\n'
            f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{pad + h}" stroke="#888"/>\n'
            f'<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="{pts(rps, top_r)}"/>\n'
            f'<polyline fill="none" stroke="#d62728" stroke-width="1.5" stroke-dasharray="4 3" '
            f'points="{pts(p50, top_l)}"/>\n'
            f'<text x="{pad}" y="{height - 8}">0 s</text>'
            f'<text x="{pad + w - 30}" y="{height - 8}">{len(rps)} s</text>\n'
            f'</svg>\n')


def _xml(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------


def _mark(ok: Any) -> str:
    return {True: "✅ pass", False: "❌ fail", None: "➖ n/a"}.get(ok, str(ok))


def _cell(v: Any) -> str:
    s = "" if v is None else str(v)
    return s.replace("|", "\\|").replace("\n", " ")


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return out


def _fmt(v: Any, unit: str = "", nd: int = 0) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{nd}f}{unit}"
    return f"{v}{unit}"


def render_markdown(data: Mapping[str, Any]) -> str:
    L: list[str] = []
    L.append(f"# {data.get('title', 'PoC report')}")
    L.append("")
    v = data.get("verdict") or {}
    L.append(f"**Overall: {'PASS' if v.get('passed') else 'FAIL'}** — generated {data.get('generated_at')} by "
             f"rhaii-tui {(data.get('tool') or {}).get('version', '')}"
             + (f" against {data['environment']}" if data.get("environment") else ""))
    L.append("")
    if v.get("steps"):
        L += _table(["step", "verdict"], [[k, v2] for k, v2 in v["steps"].items()])
        L.append("")
    cfg = data.get("config") or {}
    L.append("## Configuration")
    L.append("")
    L += _table(["setting", "value"], [[k, cfg[k]] for k in cfg])
    L.append("")
    if data.get("started_at"):
        L.append(f"Run: {data.get('started_at')} → {data.get('finished_at')}")
        L.append("")
    steps = data.get("results") or {}

    if "verify" in steps:
        s = steps["verify"]
        L.append(f"## Step 9 — Verify the deployment: {'PASS' if s.get('passed') else 'FAIL'}")
        L.append("")
        L += _table(["check", "result", "evidence", "fix"],
                    [[c["title"], _mark(c["ok"]), c["evidence"], c.get("fix", "")] for c in s.get("checks", [])])
        L.append("")

    if "performance" in steps:
        L += _perf_md(steps["performance"])

    if "identity" in steps:
        s = steps["identity"]
        L.append(f"## Step 11 — Model identity and cache behaviour: {'PASS' if s.get('passed') else 'FAIL'}")
        L.append("")
        L.append(f"{s.get('headline', '')}")
        L.append("")
        L.append(f"Service models: {', '.join(s.get('models') or []) or '–'} (expected model {s.get('expected_model')})")
        L.append("")
        reps = s.get("replicas") or []
        if reps:
            L += _table(["replica", "node", "model", "weights load", "KV cache", "--enable-prefix-caching",
                         "cache_config_info", "block size"],
                        [[r["pod"], r["node"], r.get("model_uri") or r.get("model_in_log") or "–",
                          _fmt(r.get("weights_seconds"), " s", 1),
                          (f"{r['kv_cache_device'] + ' ' if r.get('kv_cache_device') else ''}"
                           f"{r['kv_cache_tokens']:,} tokens") if r.get("kv_cache_tokens") is not None else "–",
                          "yes" if r.get("prefix_flag") else "NO",
                          _fmt(r.get("metrics_prefix_caching")), _fmt(r.get("block_size"))] for r in reps])
            L.append("")
        L += _table(["check", "result", "evidence"],
                    [[c["title"], _mark(c["ok"]), c["evidence"]] for c in s.get("checks", [])])
        L.append("")
    if isinstance(data.get("steps"), list):  # the whole deployment, 11 steps (runreport.py)
        from .runreport import markdown as _deployment_md

        L += _deployment_md(dict(data))
    if data.get("notes"):
        L.append("## Notes")
        L.append("")
        L += [f"- {n}" for n in data["notes"]]
        L.append("")
    return "\n".join(L)


def _pct(v: Any) -> str:
    return "–" if v is None else f"{float(v):.0%}"


def _perf_md(p: Mapping[str, Any]) -> list[str]:
    L: list[str] = []
    L.append(f"## Step 10 — Cache routing and throughput: {str(p.get('status', '')).upper()}")
    L.append("")
    L.append(f"{p.get('headline', '')}")
    L.append("")
    acc = p.get("access") or {}
    if acc:
        L.append(f"Requests went {acc.get('description', '')} ({acc.get('base_url', '')}); replicas: "
                 f"{', '.join(p.get('replicas') or [])}. Took {p.get('elapsed_s')} s.")
        L.append("")
    proof = p.get("proof")
    if proof:
        L.append(f"### Cache proof: {proof['status'].upper()} — {proof['headline']}")
        L.append("")
        L.append(f"Shared prefix of {proof['blocks']} KV blocks (~{proof['prefix_tokens_est']} tokens, "
                 f"{proof['prefix_chars']} characters), block size {proof['block_size']} "
                 f"({proof['block_size_source']}); hit ratio {_pct(proof.get('hit_ratio'))}; "
                 f"first (cold) {_fmt(proof.get('first_latency_ms'), ' ms')}, warm P50 "
                 f"{_fmt(proof.get('warm_p50_ms'), ' ms')}, speedup {_fmt(proof.get('speedup'), 'x', 2)}; "
                 f"test replica {proof.get('test_replica') or '–'}.")
        L.append("")
        L += _table(["witness", "result", "detail"], [[c["name"], _mark(c["ok"]), c["detail"]]
                                                      for c in proof.get("checks", [])])
        L.append("")
        if proof.get("replicas"):
            L += _table(["replica", "block size", "prefix caching", "Δ hits (tokens)", "Δ queries (tokens)",
                         "test requests"],
                        [[r["name"], _fmt(r.get("block_size")), _fmt(r.get("prefix_caching_enabled")),
                          _fmt(r.get("hits")), _fmt(r.get("queries")), r.get("requests")] for r in proof["replicas"]])
            L.append("")
        lat = [r["latency_ms"] for r in proof.get("requests", []) if r.get("phase") in ("cold", "warm", "control")]
        if lat:
            L.append(f"Latency of cold → warm → control requests: `{sparkline(lat)}` "
                     f"({min(lat):.0f}–{max(lat):.0f} ms)")
            L.append("")
        for n in proof.get("notes") or []:
            L.append(f"- {n}")
        if proof.get("notes"):
            L.append("")
    lo = p.get("latency_only")
    if lo:
        L.append("### The guide's latency-only test (for comparison)")
        L.append("")
        L.append(f"{lo['headline']} — latencies {', '.join(f'{x:.0f}' for x in lo.get('latencies_ms') or [])} ms. "
                 f"*{lo.get('caveat', '')}*")
        L.append("")
    runs = p.get("throughput") or []
    if runs:
        L.append("### Throughput")
        L.append("")
        rows = []
        for t in runs:
            r = t.get("result")
            if not r:
                rows.append([t["label"], "–", "–", "–", "–", "–", t.get("error") or "failed"])
                continue
            lat = r["latency_ms"]
            p99 = _fmt(lat.get("p99"), " ms") + ("" if lat.get("p99_reliable") else " (too few samples)")
            rows.append([t["label"], f"{r['throughput']:.1f}", _fmt(lat.get("p50"), " ms"), _fmt(lat.get("p90"), " ms"),
                         p99, f"{r['requests']} / {r['requests'] - r['ok']}",
                         "; ".join(r.get("warnings") or []) or "–"])
        L += _table(["run", "req/s", "P50", "P90", "P99", "requests / errors", "warnings"], rows)
        L.append("")
        for t in runs:
            rps = _series(t, "rps")
            p50 = _series(t, "p50_ms")
            if rps:
                L.append(f"- {t['label']}: req/s per second `{sparkline(rps, lo=0)}` "
                         f"(max {max(x or 0 for x in rps):.1f}); P50 ms `{sparkline(p50, lo=0)}`")
        L.append("")
        guide = p.get("guide") or []
        if guide:
            L.append("Compared with the guide's expectations:")
            L.append("")
            L += _table(["run", "check", "expected", "measured", "result", "note"],
                        [[g["run"], g["name"], g["expected"], g["measured"],
                          _mark(g["ok"]) + ("" if g.get("gating", True) else " (not counted)"), g.get("note", "")]
                         for g in guide])
            L.append("")
    for n in p.get("notes") or []:
        L.append(f"- {n}")
    if p.get("notes"):
        L.append("")
    return L


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------


def _base_path(path_base: str | os.PathLike) -> Path:
    p = Path(path_base).expanduser()
    if p.suffix.lower() in (".md", ".json", ".svg"):
        p = p.with_suffix("")
    return p


def _write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=str(path.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, REPORT_MODE)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_report(path_base: str | os.PathLike, data: Mapping[str, Any], *, secrets: Iterable[str] = ()) -> list[Path]:
    """Write `<base>.md`, `<base>.json` (and `<base>-throughput.svg` when there are throughput
    series). Returns the paths. Raises ReportError with a message that says what to do."""
    base = _base_path(path_base)
    if not base.name or base.name in (".", ".."):
        raise ReportError(f"{path_base!s} is not a file name: give a path like ./poc-report")
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ReportError(f"cannot create the directory {base.parent}: {e.strerror}. Pick another path.") from None
    data = redact(dict(data), secrets)
    files: list[tuple[Path, str]] = [
        (base.with_name(base.name + ".md"), scrub_text(render_markdown(data), secrets)),
        (base.with_name(base.name + ".json"), scrub_text(json.dumps(data, indent=2, default=str), secrets)),
    ]
    runs = ((data.get("results") or {}).get("performance") or {}).get("throughput") or []
    svgs = [render_svg(t) for t in runs if _series(t, "rps")]
    if svgs:
        # one file, the charts stacked
        body = "".join(s.replace('<svg xmlns="http://www.w3.org/2000/svg"',
                                 f'<svg y="{i * 210}" xmlns="http://www.w3.org/2000/svg"', 1)
                       for i, s in enumerate(svgs))
        svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="640" height="{210 * len(svgs)}">\n{body}</svg>\n')
        files.append((base.with_name(base.name + "-throughput.svg"), scrub_text(svg, secrets)))
    written: list[Path] = []
    for path, text in files:
        try:
            _write(path, text)
        except OSError as e:
            raise ReportError(f"cannot write {path}: {e.strerror}. Pick another path.") from None
        written.append(path)
    return written


def default_report_base(cfg: Any, directory: str | os.PathLike = ".") -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return Path(directory) / f"rhaii-poc-{getattr(cfg, 'service', 'service')}-{stamp}"


__all__ = ["PocRun", "ReportError", "build_report", "build_report_from_run", "default_report_base", "redact",
           "render_markdown", "render_svg", "run_checks", "scrub_text", "sparkline", "write_report"]
