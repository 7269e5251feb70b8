"""Step 11: model identity and cache behaviour.

What the replicas really serve, read from the running system (`steps.identity.run_identity` does
the work, in a worker thread): the model the service's models endpoint lists, and per replica the
model it loaded, "Loading weights took", the KV cache size, and whether `--enable-prefix-caching`
is in the live pod spec (and vllm:cache_config_info agrees); then a summary of step 10's cache
proof for this deployment.

Keys: `r` read it again, `x` export the PoC report (steps 9-11).
"""

from __future__ import annotations

import time
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.widgets import Button, Label, Static

from ..widgets.cache_test import stored_proof_content
from . import register_step_screen
from .verify import ResultsPage, _state

ITEMS = (("model", "model"), ("weights", "weights"), ("kv", "KV cache"), ("prefix", "prefix caching"))


def _mark(ok: bool | None) -> tuple[str, str]:
    return {True: ("✔", "bold $success"), False: ("✘", "bold $error")}.get(ok, ("?", "bold $warning"))  # type: ignore[arg-type]


def models_content(result: Any) -> Content:
    """The service's models endpoint."""
    c = next((c for c in result.checks if c.key == "models"), None)
    if c is None:
        bad = next((c for c in result.checks if c.ok is False), None)
        return Content.assemble(("✘ ", "bold $error"), (bad.evidence if bad else "no answer", ""))
    glyph, style = _mark(c.ok)
    return Content.assemble((f"{glyph} ", style), ("The service serves ", "bold"),
                            (", ".join(result.models) or "no model", "bold"),
                            (f"  (expected model {result.expected_model}; {c.evidence})", "$text-muted"),
                            *((("\nFix: ", "bold $warning"), c.fix) if c.fix else ()))


def replica_content(result: Any, replica: Any) -> Content:
    """One replica: model, weights, KV cache, --enable-prefix-caching (each with its mark and fix)."""
    by_key = {c.key: c for c in result.checks}
    parts: list[Any] = [(replica.pod, "bold"), (f"  on {replica.node}" if replica.node else "", "$text-muted")]
    if replica.vllm_version:
        parts.append((f"  vLLM {replica.vllm_version}", "$text-muted"))
    for key, label in ITEMS:
        c = by_key.get(f"{key}:{replica.pod}")
        if c is None:
            continue
        glyph, style = _mark(c.ok)
        if key == "prefix":
            evidence = c.evidence.replace("in the main container's args", "in the live pod spec")
            parts += ["\n  ", (f"{glyph} ", style), ("--enable-prefix-caching", "bold"), " ", evidence]
        else:
            parts += ["\n  ", (f"{glyph} ", style), (f"{label:<9}", "bold"), " ", c.evidence]
        if c.ok is not True and c.fix:
            parts += ["\n    ", ("Fix: ", "bold $warning"), c.fix]
    for e in replica.errors:
        parts += ["\n  ", ("! ", "bold $warning"), (e, "$text-muted")]
    return Content.assemble(*parts)


@register_step_screen(11)
class IdentityScreen(ResultsPage):
    """Step 11's page."""

    PROBE = "rhaii_tui.steps.identity"

    DEFAULT_CSS = """
    IdentityScreen {
        .step-commands CommandList { max-height: 4; }
        #identity-body { height: 1fr; padding: 0 1 0 0; }
        #identity-body > Static { height: auto; margin: 0 0 1 0; }
        .identity-replica { border-left: outer $primary 50%; padding: 0 0 0 1; }
        #identity-body > #identity-proof-title { text-style: bold; color: $accent; margin: 0; }
        #identity-replicas-anchor { display: none; }
    }
    """

    BINDINGS = [
        Binding("r", "run", "Read again", tooltip="Read the model, logs and pod specs of every replica"),
        Binding("x", "export", "Export report", tooltip="Write the PoC report (Markdown + JSON + SVG)"),
    ]

    class Finished(Message):
        bubble = False

        def __init__(self, result: Any, error: str | None = None) -> None:
            super().__init__()
            self.result = result
            self.error = error

    def __init__(self, number: int = 11, **kwargs: Any) -> None:
        super().__init__(number, **kwargs)
        self.result: Any = None      # the last IdentityResult

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="run-bar"):
            yield Button("Read replicas", id="identity-run", variant="primary", compact=True,
                         tooltip="Read the model, logs and pod specs of every replica (r)")
            yield Button("Export report…", id="identity-export", compact=True, tooltip="Export the PoC report (x)")
            yield Label("Press r (or Read replicas): reads logs, pod specs and /metrics; sends no load.",
                        id="identity-status", classes="run-status")
        with VerticalScroll(id="identity-body"):
            yield Static(Content.styled(
                "Per replica: the model it loaded, “Loading weights took”, the KV cache size, and "
                "--enable-prefix-caching in the live pod spec; then step 10's cache proof.", "$text-muted"),
                id="identity-models")
            yield Static("", id="identity-replicas-anchor",)
            yield Label("Step 10's cache proof", id="identity-proof-title")
            yield Static(Content.styled("Not read yet.", "$text-muted"), id="identity-proof")

    # running ------------------------------------------------------------------------------------
    def action_run(self) -> None:
        ctx = self.begin_run()
        if ctx is None:
            return
        self.query_one("#identity-run", Button).disabled = True
        self.query_one("#identity-status", Label).update("reading every replica…")
        self.set_state(_state("in_progress", "reading every replica…"))
        self._run(ctx)

    @work(thread=True, group="identity-run", exclusive=True, exit_on_error=False)
    def _run(self, ctx: Any) -> None:
        from ..steps.identity import run_identity

        try:
            res = run_identity(ctx)
        except Exception as e:  # noqa: BLE001 - never a traceback
            self.post_message(self.Finished(None, f"{type(e).__name__}: {e}"))
            return
        self.post_message(self.Finished(res))

    @on(Finished)
    async def _finished(self, message: "IdentityScreen.Finished") -> None:
        self.end_run()
        self.query_one("#identity-run", Button).disabled = False
        status = self.query_one("#identity-status", Label)
        if message.error or message.result is None:
            status.update("stopped with an error")
            self.set_state(_state("failed", f"Reading the replicas failed: {message.error}"))
            return
        res = message.result
        self.result = res
        await self.show_result(res)
        status.update(f"{'✔' if res.passed else '✘'} {res.headline} · {time.strftime('%H:%M:%S')}")
        self.set_state(self.state_for(res))

    async def show_result(self, res: Any) -> None:
        body = self.query_one("#identity-body", VerticalScroll)
        self.query_one("#identity-models", Static).update(models_content(res))
        await body.query(".identity-replica").remove()
        anchor = self.query_one("#identity-replicas-anchor")
        cards = [Static(replica_content(res, r), classes="identity-replica")
                 for r in res.replicas]
        others = [c for c in res.checks if c.ok is False and c.key.split(":")[0] not in
                  ("models", "model", "weights", "kv", "prefix", "proof")]
        for c in others:
            cards.append(Static(Content.assemble(("✘ ", "bold $error"), (c.title, "bold"), "\n", c.evidence,
                                                 *((("\nFix: ", "bold $warning"), c.fix) if c.fix else ())),
                                classes="identity-replica"))
        if cards:
            await body.mount_all(cards, after=anchor)
        self.query_one("#identity-proof", Static).update(stored_proof_content(res.proof))

    @staticmethod
    def state_for(res: Any) -> Any:
        data = {"result": res.to_dict()}
        if res.passed:
            return _state("done", res.headline, data=data)
        bad = next((c for c in res.checks if c.ok is False), None)
        if bad is not None:
            return _state("failed", f"{bad.title}: {bad.evidence}", fix=bad.fix, data=data)
        proof = next((c for c in res.checks if c.key == "proof"), None)
        if proof is not None and proof.ok is None:
            return _state("not_started", "Model and prefix caching confirmed; cache proof not run yet",
                          fix=proof.fix, data=data)
        return _state("not_started", res.headline, data=data)

    # buttons ------------------------------------------------------------------------------------
    @on(Button.Pressed, "#identity-run")
    def _run_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_run()

    @on(Button.Pressed, "#identity-export")
    def _export_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_export()


__all__ = ["IdentityScreen", "models_content", "replica_content"]
