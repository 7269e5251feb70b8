"""CacheTestPane: step 10's cache proof, shown so that a reader can follow the argument.

What it shows (from `loadtest.cache_proof.CacheVerdict` and `LatencyOnlyVerdict`):

- the verdict: "cache-aware routing works" only when the three witnesses (metrics, affinity,
  latency) agree; otherwise which part failed and the fix (caching off -> --enable-prefix-caching
  in step 5; routing not prefix-aware -> the EPP sidecar of step 6 / the EnvoyFilters of step 7);
- the settings: block size (and where it came from), the shared prefix in full blocks;
- latency: the first (cold) request vs the repeats, and the speed-up;
- every request of the test, live: which replica served it (affinity) and the cached tokens it got;
- per replica: the delta of vllm:prefix_cache_hits / _queries during the test;
- the control request (a different prefix of the same length must not hit);
- what the guide's latency-only test concluded, and why it can be fooled.

Feed it: `reset()`, `proof_event(ProofEvent)` while the proof runs, `show(verdict, latency_only)`
at the end, or `show_stored(entry)` for a summary kept in the state file. All text is plain
(never markup). No cloud imports here.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Mapping, Sequence

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import Static

GUIDE_PROMPT_TOKENS_NOTE = "~8 tokens"

# failing part -> (what failed, the fix)
FIXES: dict[str, tuple[str, str]] = {
    "caching": ("prefix caching is off or not hitting",
                "Add --enable-prefix-caching to the vLLM args of the LLMInferenceService (step 5) and let "
                "the pods roll; step 11 shows the flag in each live pod spec."),
    "routing": ("routing is not prefix-aware",
                "Check step 6 (the EPP scheduler pod has its Istio sidecar: 2/2) and step 7 (the three "
                "EnvoyFilters in opendatahub), then run the proof again."),
    "metrics": ("the replicas' counters could not be read",
                "Reading /metrics goes through the Kubernetes API pod proxy: you need pods/proxy access and "
                "Ready pods (step 9)."),
    "control": ("a different prefix also hit the cache",
                "Run the proof again while nothing else sends requests to the service."),
    "latency": ("the repeats were not faster",
                "Run it again while the service is idle; if it persists, use a longer prefix (more blocks)."),
    "service": ("the service did not answer the test requests", "Run step 9 to see which part fails."),
    "settings": ("the proof could not be set up", "Check the model's max-model-len and block size."),
}
CHECK_LABELS = {"metrics": "metrics", "caching": "caching", "affinity": "affinity", "control": "control",
                "latency": "latency", "service": "service", "settings": "settings"}


def _mark(ok: bool | None) -> tuple[str, str]:
    return {True: ("✔", "bold $success"), False: ("✘", "bold $error")}.get(ok, ("?", "bold $warning"))  # type: ignore[arg-type]


def short_names(names: Iterable[str]) -> dict[str, str]:
    """Replica names without the part they all share ("qwen-…-kserve-86f-abcde" -> "…abcde")."""
    names = sorted({n for n in names if n})
    if len(names) < 2:
        return {n: n for n in names}
    common = os.path.commonprefix(names)
    cut = common.rfind("-") + 1
    if cut <= 3:
        return {n: n for n in names}
    return {n: "…" + n[cut:] for n in names}


def _ms(v: Any) -> str:
    return "–" if v is None else f"{float(v):.0f} ms"


def _tokens(v: Any) -> str:
    return "–" if v is None else f"{float(v):,.0f}"


def verdict_content(status: str, headline: str, failing: Sequence[str] = ()) -> Content:
    """The verdict line(s): pass/fail/inconclusive, the headline, which part failed and its fix."""
    if status == "pass":
        return Content.assemble(("✔ ", "bold $success"), (headline, "bold $success"),
                                ("  (metrics, affinity and latency agree)", "$text-muted"))
    glyph, style = ("✘", "bold $error") if status == "fail" else ("?", "bold $warning")
    parts: list[Any] = [(f"{glyph} ", style), (headline or status, style)]
    for part in failing:
        what, fix = FIXES.get(part, (part, ""))
        parts += ["\n", ("Failed: ", "bold"), f"{part} — {what}"]
        if fix:
            parts += ["\n", ("Fix: ", "bold $warning"), fix]
    return Content.assemble(*parts)


def latency_only_content(lo: Any, proof_passed: bool | None, block_size: int | None) -> Content:
    """What the guide's latency-only test concluded, and why it can be fooled."""
    if lo is None:
        return Content("")
    get = (lo.get if isinstance(lo, Mapping) else lambda k, d=None: getattr(lo, k, d))
    bs = f"one {block_size}-token KV block" if block_size else "one KV block"
    parts: list[Any] = [
        ("What the guide's test would conclude", "bold $accent"), "\n",
        (f"5 × “{get('prompt', 'Translate to French: Hello world')}” ({GUIDE_PROMPT_TOKENS_NOTE}, shorter than "
         f"{bs}), judged by latency alone: ", ""),
    ]
    if get("error"):
        parts.append((f"the service did not answer ({get('error')})", "$error"))
        return Content.assemble(*parts)
    parts += [f"first {_ms(get('first_ms'))}, then {_ms(get('later_avg_ms'))} on average → ",
              (f"“{get('headline', '')}”", "bold")]
    says = bool(get("says_cache_works"))
    if proof_passed is not None:
        if says != proof_passed:
            parts += ["\n", ("✘ It would be wrong here", "bold $error"),
                      (": the counters above say " + ("routing and caching work." if proof_passed
                                                      else "they do not."), "")]
        else:
            parts += ["\n", ("It agrees this time, but only by chance", "bold $warning")]
    parts += ["\n", ("Why it can be fooled: vLLM caches only full KV blocks and this prompt fills none, and the "
                     "gateway's prefix hash needs 64 characters; any speed-up is warm-up (a new connection, the "
                     "first pass through the EPP, XLA compiles), not the cache. Only the servers' own counters "
                     "prove it.", "$text-muted")]
    return Content.assemble(*parts)


def requests_content(requests: Sequence[Any], names: Mapping[str, str]) -> Content:
    """The test's requests (warm-up summarised): phase, latency, replica, cached tokens."""
    warm_up = [r for r in requests if r.phase == "warmup"]
    test = [r for r in requests if r.phase != "warmup"]
    parts: list[Any] = []
    if warm_up:
        served = sorted({names.get(r.served_by, r.served_by) for r in warm_up if r.served_by})
        parts += [(f"warm-up: {len(warm_up)} requests on unrelated prefixes", "$text-muted"),
                  (f" (served by {', '.join(served)})" if served else "", "$text-muted"), "\n"]
    if test:
        parts.append((f"{'request':<11}{'latency':>9}  {'replica':<16}{'cached tokens':>14}\n", "bold"))
    for r in test:
        label = f"{r.phase} #{r.index}" if r.phase != "control" else "control"
        who = names.get(r.served_by, r.served_by) if r.served_by else "?"
        src = "" if r.served_by_source in (None, "header") else f" ({r.served_by_source})"
        if not r.ok:
            parts.append((f"{label:<11}{'failed':>9}  {(r.error or '')[:40]}\n", "$error"))
            continue
        style = "$text-muted" if r.phase == "control" else ""
        parts.append((f"{label:<11}{r.latency_ms:>6.0f} ms  {(who + src):<16}{_tokens(r.hits):>14}\n", style))
    return Content.assemble(*parts) if parts else Content("")


def replicas_content(replicas: Sequence[Any], names: Mapping[str, str], test_replica: str | None) -> Content:
    """Per replica: requests of the test it served, Δ prefix_cache_hits / queries, caching flag, block size."""
    if not replicas:
        return Content("")
    parts: list[Any] = [("Per replica during the test (Δ vllm:prefix_cache_hits / _queries, tokens)\n", "bold $accent"),
                        (f"{'replica':<16}{'requests':>9}{'Δ hits':>10}{'Δ queries':>11}{'hit %':>7}  caching  block\n",
                         "bold")]
    for r in replicas:
        hits, queries = r.hits, r.queries
        pct = f"{hits / queries:.0%}" if hits is not None and queries else "–"
        caching = {True: "on", False: "OFF", None: "?"}[r.prefix_caching_enabled]
        style = "bold" if r.name == test_replica else ""
        line = (f"{names.get(r.name, r.name):<16}{r.requests:>9}{_tokens(hits):>10}{_tokens(queries):>11}{pct:>7}  "
                f"{caching:<7}  {r.block_size or '–'}")
        if r.metrics_error:
            line += f"  ({r.metrics_error[:40]})"
        parts.append((line + "\n", "$error" if caching == "OFF" or r.metrics_error else style))
    return Content.assemble(*parts)


def checks_content(checks: Sequence[Any]) -> Content:
    parts: list[Any] = [("The witnesses\n", "bold $accent")]
    for c in checks:
        glyph, style = _mark(c.ok)
        parts += [(f"{glyph} ", style), (f"{CHECK_LABELS.get(c.name, c.name):<9}", "bold"), f"{c.detail or '—'}\n"]
    return Content.assemble(*parts)


def settings_content(v: Any) -> Content:
    src = "from vllm:cache_config_info" if v.block_size_source == "metrics" else "assumed: not reported"
    return Content.assemble(
        ("Block size ", "bold"), f"{v.block_size} tokens ({src})",
        ("   Shared prefix ", "bold"), f"{v.blocks} full blocks",
        (f" (~{v.prefix_tokens_est} tokens; {v.cacheable_tokens_per_repeat} cacheable per repeat)", "$text-muted"))


def latency_content(v: Any) -> Content:
    speed = f"{v.speedup:.2f}× faster" if v.speedup else "no speed-up measured"
    return Content.assemble(
        ("First request ", "bold"), _ms(v.first_latency_ms), "  →  ", ("repeats (P50) ", "bold"), _ms(v.warm_p50_ms),
        ": ", (speed, "bold"), ("   control ", "bold"), _ms(v.control_latency_ms),
        (f"   hit ratio {v.hit_ratio:.0%}" if v.hit_ratio is not None else "", ""))


def stored_proof_content(entry: Mapping[str, Any] | None) -> Content:
    """A proof summary kept in the state file (step 10's last run for this deployment)."""
    if not entry:
        return Content.styled("No cache proof for this deployment yet: run step 10.", "$text-muted")
    p = entry.get("proof") or {}
    ok = entry.get("proof_passed")
    status = p.get("status") or ("pass" if ok else "fail")
    parts: list[Any] = [verdict_content(status, p.get("headline") or entry.get("headline") or "",
                                        p.get("failing") or [])]
    bits = []
    if p.get("hit_ratio") is not None:
        bits.append(f"hit ratio {p['hit_ratio']:.0%}")
    if p.get("test_replica"):
        bits.append(f"all repeats on {p['test_replica']}")
    if p.get("first_latency_ms") is not None and p.get("warm_p50_ms") is not None:
        bits.append(f"first {_ms(p['first_latency_ms'])} → repeats {_ms(p['warm_p50_ms'])}")
    if p.get("speedup"):
        bits.append(f"{p['speedup']:.2f}× faster")
    if p.get("block_size"):
        bits.append(f"block size {p['block_size']}, prefix {p.get('blocks')} blocks")
    if bits:
        parts += ["\n", Content.styled(" · ".join(bits), "$text-muted")]
    for c in p.get("checks") or []:
        glyph, style = _mark(c.get("ok"))
        parts += ["\n", Content.styled(f"{glyph} ", style), Content.styled(f"{c.get('name', ''):<9}", "bold"),
                  Content(str(c.get("detail") or "—"))]
    lo = entry.get("latency_only")
    if lo:
        parts += ["\n", Content.styled(f"The guide's latency-only test said: “{lo.get('headline', '')}”",
                                       "$text-muted")]
    parts += ["\n", Content.styled(f"at {entry.get('at')}", "$text-muted")]
    return Content.assemble(*parts)


class CacheTestPane(VerticalScroll):
    """The cache proof, live and at the end (see the module docstring)."""

    DEFAULT_CSS = """
    CacheTestPane {
        height: 1fr;
        padding: 0 1 0 0;
        & > Static { height: auto; margin: 0 0 1 0; }
        #proof-verdict { margin: 0 0 1 0; }
        #proof-progress { color: $text-muted; }
        .-empty { display: none; }
    }
    """

    def compose(self) -> ComposeResult:
        yield Static(self._idle_text(), id="proof-verdict")
        yield Static("", id="proof-settings", classes="-empty")
        yield Static("", id="proof-latency", classes="-empty")
        yield Static("", id="proof-requests", classes="-empty")
        yield Static("", id="proof-replicas", classes="-empty")
        yield Static("", id="proof-checks", classes="-empty")
        yield Static("", id="proof-guide", classes="-empty")
        yield Static("", id="proof-notes", classes="-empty")
        yield Static("", id="proof-progress", classes="-empty")

    def on_mount(self) -> None:
        self._live: list[Any] = []
        self.verdict: Any = None
        self.latency_only: Any = None

    @staticmethod
    def _idle_text() -> Content:
        return Content.assemble(
            ("Not run yet. ", "bold"),
            ("The proof sends a shared prefix of several full KV blocks 8 times after a warm-up, reads each "
             "replica's vllm:prefix_cache_hits / _queries, checks that one replica served every repeat, then "
             "sends a control prefix. It says “cache-aware routing works” only when the counters, the affinity "
             "and the latency agree.", "$text-muted"))

    # API ---------------------------------------------------------------------------------------
    def reset(self, message: str = "running the cache proof…") -> None:
        self._live = []
        self.verdict = None
        self.latency_only = None
        self._set("proof-verdict", Content.styled(f"◐ {message}", "bold $accent"))
        for wid in ("proof-settings", "proof-latency", "proof-requests", "proof-replicas", "proof-checks",
                    "proof-guide", "proof-notes", "proof-progress"):
            self._set(wid, None)

    def progress(self, message: str) -> None:
        self._set("proof-progress", Content(message))

    def proof_event(self, event: Any) -> None:
        """A ProofEvent while the proof runs."""
        if getattr(event, "message", ""):
            self.progress(event.message)
        req = getattr(event, "request", None)
        if req is not None:
            self._live.append(req)
            names = short_names(r.served_by for r in self._live if r.served_by)
            self._set("proof-requests", requests_content(self._live, names))

    def show_latency_only(self, lo: Any) -> None:
        self.latency_only = lo
        self._set("proof-guide", latency_only_content(lo, None, None))

    def show(self, verdict: Any, latency_only: Any = None, *, extra_note: str = "") -> None:
        """The final verdict (a CacheVerdict, or None when the proof did not run)."""
        self.verdict = verdict
        self.latency_only = latency_only
        self._set("proof-progress", None)
        if verdict is None:
            self._set("proof-verdict", Content.styled(f"? the cache proof did not run{': ' + extra_note if extra_note else ''}",
                                                      "bold $warning"))
            self._set("proof-guide", latency_only_content(latency_only, None, None) if latency_only else None)
            return
        names = short_names([r.name for r in verdict.replicas] + [r.served_by for r in verdict.requests if r.served_by])
        self._set("proof-verdict", verdict_content(verdict.status, verdict.headline, verdict.failing))
        if verdict.prefix_tokens_est:
            self._set("proof-settings", settings_content(verdict))
        if verdict.requests:
            self._set("proof-latency", latency_content(verdict))
            legend = ""
            full = [n for n in names if names[n] != n]
            if full:
                common = os.path.commonprefix(sorted(full))
                common = common[: common.rfind("-") + 1]
                legend = f"replicas: {common}{{{', '.join(sorted(names[n][1:] for n in full))}}}\n"
            self._set("proof-requests", Content.assemble(Content.styled(legend, "$text-muted"),
                                                         requests_content(verdict.requests, names)))
        self._set("proof-replicas", replicas_content(verdict.replicas, names, verdict.test_replica))
        self._set("proof-checks", checks_content(verdict.checks))
        self._set("proof-guide", latency_only_content(latency_only, verdict.passed if verdict.status != "inconclusive"
                                                      else None, verdict.block_size) if latency_only else None)
        notes = list(verdict.notes) + ([extra_note] if extra_note else [])
        self._set("proof-notes", Content.styled("\n".join(f"Note: {n}" for n in notes), "$text-muted")
                  if notes else None)

    def show_stored(self, entry: Mapping[str, Any] | None) -> None:
        """Before a run in this session: the last stored proof for this deployment."""
        if entry is None:
            return
        self._set("proof-verdict", Content.assemble(Content.styled("Last run for this deployment\n", "bold $accent"),
                                                    stored_proof_content(entry)))

    @property
    def plain(self) -> str:
        """Everything shown, as plain text (tests)."""
        out = []
        for s in self.query(Static):
            if not s.has_class("-empty"):
                out.append(str(s.content))
        return "\n".join(out)

    # plumbing ------------------------------------------------------------------------------------
    def _set(self, wid: str, content: Content | None) -> None:
        w = self.query_one(f"#{wid}", Static)
        if content is None or not str(content):
            w.update("")
            w.add_class("-empty")
        else:
            w.update(content)
            w.remove_class("-empty")


__all__ = ["CacheTestPane", "FIXES", "latency_only_content", "short_names", "stored_proof_content",
           "verdict_content"]
