"""Step 7: the three EnvoyFilters for cache-aware routing, each shown with its target.

- Apply (`A`): `steps.envoyfilters.apply` in a thread worker — server-side apply of the three
  filters rendered for this service and namespace into the gateway namespace (idempotent). Their
  YAML is in a collapsible view.
- The list: every EnvoyFilter of this deployment (present or not) and any other one in the
  gateway namespace that patches the EPP path (`steps.envoyfilters.live_rows`), each with its kind
  and target (the Envoy cluster it points at, or the routes). A filter whose target does not match
  the live `<svc>-epp-service` — typically left over after the service was renamed, or edited by
  hand — is flagged in red with its fix: routing silently stops being cache-aware otherwise.
- The page reads the cluster when shown, every few seconds while on show, on `r` and after Apply,
  so it is right on re-open and a filter changed behind its back is caught.
"""

from __future__ import annotations

from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.highlight import highlight
from textual.widgets import Button, Collapsible, Label, Static

from .. import manifests as m
from ..config import GATEWAY_NAMESPACE
from ..steps import envoyfilters as ef
from ..steps.base import Status, StepState
from . import register_step_screen
from .epp_sidecar import ProbingScreen, error_state

FILTER_FILES = ("envoyfilter-epp-mtls-fix.yaml", "envoyfilter-ext-proc.yaml", "envoyfilter-route-extproc-body.yaml")

# row state -> (mark, style, word)
STATE_MARK: dict[str, tuple[str, str, str]] = {
    ef.OK: ("✔", "bold $success", "matches the live EPP service"),
    ef.MISMATCH: ("✘", "bold $error", "wrong target"),
    ef.MISSING: ("○", "$text-muted", "not applied"),
    ef.FOREIGN: ("⚠", "bold $warning", "another service's filter"),
}


def target_text(row: Any) -> str:
    """What the filter points at, short: 'svc.ns:9002' for an Envoy cluster; route names with their
    common prefix once ('ns.svc-kserve-route.{0,1}')."""
    if not row.targets:
        return "—"
    out = []
    for t in row.targets:
        parsed = ef.parse_cluster(t)
        out.append(f"{parsed[1]}.{parsed[2]}:{parsed[0]}" if parsed else t)
    heads = {t.rpartition(".")[0] for t in out}
    if len(out) > 1 and len(heads) == 1 and all("." in t for t in out):
        head = heads.pop()
        return f"{head}.{{{','.join(t.rpartition('.')[2] for t in out)}}}"
    return ", ".join(out)


def expected_text(cfg: Any) -> str:
    return f"{m.epp_service_name(cfg.service)}.{cfg.namespace}:{m.EPP_GRPC_PORT}"


def row_fix(row: Any, cfg: Any) -> str:
    if row.state == ef.MISMATCH and row.ours:
        return (f"Apply again (A) to restore the filter rendered for {cfg.service}; if the service was renamed, "
                "set the new name in Configure first.")
    if row.state in (ef.MISMATCH, ef.FOREIGN) and not row.ours:
        return f"delete it if it is left over from another service:\n$ kubectl delete envoyfilter {row.name} " \
               f"-n {GATEWAY_NAMESPACE}"
    if row.state == ef.MISSING:
        return "Apply (A)."
    return ""


SEVERITY_ORDER = {ef.MISMATCH: 0, ef.FOREIGN: 1, ef.MISSING: 2, ef.OK: 3}


def ordered(rows: list[Any]) -> list[Any]:
    """Wrong targets first, then other services' filters, missing ones, and the good ones."""
    return sorted(rows, key=lambda r: SEVERITY_ORDER.get(r.state, 4))


def row_contents(r: Any, cfg: Any) -> tuple[Content, Content]:
    """(head, body) of one filter: mark, name, kind and what is wrong; the target, the detail of a
    wrong one and its fix (the body is shown indented)."""
    mark, style, word = STATE_MARK.get(r.state, ("?", "", r.state))
    head: list[Any] = [(f"{mark} ", style), (r.name, "bold"), (f"  {r.kind_label}", "$text-muted")]
    if r.state != ef.OK:
        head.append((f"  {word}", style))
    if r.present:
        body: list[Any] = [("→ ", "$text-muted"), (target_text(r), "$error" if r.state == ef.MISMATCH else "")]
    else:
        body = [("→ ", "$text-muted"), (f"{target_text(_expected_row(r))} once applied", "$text-muted")]
    if r.state in (ef.MISMATCH, ef.FOREIGN):
        body += ["\n", (r.detail, "$error" if r.state == ef.MISMATCH else "$warning")]
    fix = row_fix(r, cfg)
    if fix and r.state != ef.MISSING:
        body += ["\n", ("Fix: ", "bold $warning"), (fix, "")]
    return Content.assemble(*head), Content.assemble(*body)


def filters_content(rows: list[Any], cfg: Any) -> Content:
    """The whole list as one text (what the page shows, without the indentation)."""
    if not rows:
        return Content.styled("No EnvoyFilter read yet.", "$text-muted")
    parts: list[Any] = []
    for i, r in enumerate(ordered(rows)):
        head, body = row_contents(r, cfg)
        parts += (["\n"] if i else []) + [head, "\n", body]
    return Content.assemble(*parts)


def _expected_row(row: Any) -> Any:
    return type("Expected", (), {"targets": list(row.expected)})()


@register_step_screen(7)
class EnvoyFiltersScreen(ProbingScreen):
    """Step 7: apply the three EnvoyFilters and check each one's target."""

    DEFAULT_CSS = """
    EnvoyFiltersScreen {
        .step-state { max-height: 4; }  /* wraps: whole at 80 columns */
        .step-commands CommandList { max-height: 4; }
        #ef-actions { height: 1; margin: 0 1 0 0; }
        #ef-apply { margin: 0 1 0 0; min-width: 9; }
        #ef-status { width: 1fr; text-wrap: nowrap; text-overflow: ellipsis; }
        #ef-expected { height: auto; margin: 1 1 0 0; }
        #ef-list { height: 1fr; margin: 1 1 0 0; }
        .ef-head { height: auto; }
        .ef-body { height: auto; padding: 0 0 0 4; }
        #ef-yaml { margin: 0 1 0 0; padding: 0; border-top: none; }
        #ef-yaml Contents { padding: 0 0 0 2; }
        #ef-yaml-scroll { height: auto; max-height: 12; overflow-x: auto; scrollbar-size-vertical: 1;
                          scrollbar-size-horizontal: 1; }
        #ef-yaml-text { width: auto; text-wrap: nowrap; }
    }
    """

    BINDINGS = [
        Binding("A", "apply", "Apply", key_display="A",
                tooltip="Server-side apply of the three EnvoyFilters (idempotent)"),
        Binding("r", "refresh", "Refresh", tooltip="Read the EnvoyFilters again"),
    ]

    def __init__(self, number: int = 7, **kwargs: Any) -> None:
        super().__init__(number, **kwargs)
        self.rows: list[Any] = []
        self._shown_text = ""

    # composition ------------------------------------------------------------------------------
    def compose_body(self) -> ComposeResult:
        cfg = self.cfg
        with Horizontal(id="ef-actions"):
            yield Button("Apply", id="ef-apply", compact=True, variant="primary",
                         tooltip="Server-side apply of the three filters (A); applying again changes nothing")
            yield Label(Content.styled("not connected to a cloud yet", "$text-muted"), id="ef-status")
        yield Static(self._expected_content(cfg), id="ef-expected")
        with VerticalScroll(id="ef-list"):
            yield from self._row_widgets(ef.filter_rows([], cfg), cfg)
        with Collapsible(title=self._yaml_title(cfg), collapsed=True, id="ef-yaml"):
            with VerticalScroll(id="ef-yaml-scroll"):
                yield Static(self._yaml_content(cfg), id="ef-yaml-text")

    @staticmethod
    def _row_widgets(rows: list[Any], cfg: Any) -> list[Static]:
        out = []
        for r in ordered(rows):
            head, body = row_contents(r, cfg)
            out += [Static(head, classes=f"ef-head -{r.state}"), Static(body, classes="ef-body")]
        return out

    @staticmethod
    def _expected_content(cfg: Any) -> Content:
        return Content.assemble(("In ", "$text-muted"), (GATEWAY_NAMESPACE, "bold"),
                                (", each filter must target ", "$text-muted"), (expected_text(cfg), "bold"),
                                (f" (the EPP service of {cfg.service}).", "$text-muted"))

    @staticmethod
    def _yaml_title(cfg: Any) -> str:
        return f"Rendered YAML: the 3 EnvoyFilters for {cfg.service}"

    @staticmethod
    def _yaml_content(cfg: Any) -> Content:
        try:
            files = m.render_all(cfg)
            text = "---\n".join(files[name] for name in FILTER_FILES if name in files)
        except (ValueError, KeyError) as e:
            return Content.styled(f"Cannot render the filters: {e}", "$error")
        return highlight(text, language="yaml")

    def config_changed(self, cfg: Any) -> None:
        self.query_one("#ef-expected", Static).update(self._expected_content(cfg))
        self.query_one("#ef-yaml", Collapsible).title = self._yaml_title(cfg)
        self.query_one("#ef-yaml-text", Static).update(self._yaml_content(cfg))
        super().config_changed(cfg)

    # probing ------------------------------------------------------------------------------------
    def probe_data(self, ctx: Any) -> Any:
        from ..cloud.gke import CloudError

        if ctx.kube_or_none() is None:
            return StepState(Status.NOT_STARTED, "The cluster is not ready yet (step 2).")
        try:
            rows = ef.live_rows(ctx)
        except CloudError as e:
            return error_state(e, "read the EnvoyFilters")
        return rows

    def show_probe(self, result: Any) -> None:
        if isinstance(result, StepState):  # no cluster yet, or it could not be read: say so in full
            if not self.set_probed_state(result):
                return  # the failed Apply stays on show
            failed = result.status is Status.FAILED
            self.show_status(("✘ " if failed else "") + result.summary, "$error" if failed else "$text-muted")
            message = Content.assemble((result.summary, "$error" if failed else "$text-muted"),
                                       *((["\n", ("Fix: ", "bold $warning"), result.fix]) if result.fix else []))
            if message.plain != self._shown_text:
                self._shown_text = message.plain
                box = self.query_one("#ef-list", VerticalScroll)
                with self.app.batch_update():
                    box.remove_children()
                    box.mount(Static(message, classes="ef-head"))
            return
        self.show_rows(result)

    def show_rows(self, rows: list[Any]) -> None:
        """Show live rows (from `envoyfilters.live_rows`) and the step's state from them."""
        cfg = self.cfg
        self.rows = list(rows)
        state = ef.assess(cfg, self.rows)
        shown = self.set_probed_state(state)
        text = filters_content(self.rows, cfg).plain
        if text != self._shown_text:
            self._shown_text = text
            box = self.query_one("#ef-list", VerticalScroll)
            with self.app.batch_update():
                box.remove_children()
                box.mount_all(self._row_widgets(self.rows, cfg))
        if not shown:  # the failed Apply stays on show
            return
        ours = [r for r in self.rows if r.ours]
        present = sum(1 for r in ours if r.present)
        bad = [r for r in self.rows if r.state == ef.MISMATCH]
        if bad:
            self.show_status(f"✘ {len(bad)} filter{'s' if len(bad) != 1 else ''} point{'' if len(bad) != 1 else 's'}"
                             " at the wrong EPP service: routing is not cache-aware", "bold $error")
        elif present == len(ours):
            self.show_status(f"✔ {present}/{len(ours)} present, each targeting the live EPP service", "$success")
        else:
            self.show_status(f"{present}/{len(ours)} present in {GATEWAY_NAMESPACE}: press Apply", "$warning")

    def show_not_connected(self) -> None:
        self.show_status("not connected to a cloud yet", "$text-muted")

    def show_status(self, text: str, style: str = "$text-muted") -> None:
        self.query_one("#ef-status", Label).update(Content.styled(text, style))

    @property
    def list_text(self) -> str:
        """The list as shown (plain text)."""
        return self._shown_text

    def row(self, name: str) -> Any:
        return next((r for r in self.rows if r.name == name), None)

    # the action ---------------------------------------------------------------------------------
    @on(Button.Pressed, "#ef-apply")
    def _apply_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_apply()

    def action_apply(self) -> None:
        if not self.lease_first("applying the EnvoyFilters", self.action_apply):
            return
        ctx = self.begin_action()
        if ctx is None:
            return
        self.query_one("#ef-apply", Button).disabled = True
        self.show_status(f"applying the three EnvoyFilters in {GATEWAY_NAMESPACE}…", "$warning")
        self._apply(ctx)

    @work(thread=True, group="ef-apply", exit_on_error=False)
    def _apply(self, ctx: Any) -> None:
        try:
            done = ef.apply(ctx)
            rows = ef.live_rows(ctx)
        except Exception as e:  # noqa: BLE001 - shown with its fix
            self.call_ui(self._apply_done, None, error_state(e, "apply the EnvoyFilters"))
            return
        self.call_ui(self._apply_done, done, rows)

    def _apply_done(self, done: list[str] | None, result: Any) -> None:
        self.query_one("#ef-apply", Button).disabled = False
        if done is None:
            self.action_error = result
            self.set_state(result)
            self.show_status("✘ " + result.summary, "bold $error")
            self.notify(result.summary + (f"\n{result.fix}" if result.fix else ""), title="Apply failed",
                        severity="error", timeout=12, markup=False)
            self.end_action(reprobe=False)
            return
        self.notify(f"Applied in {GATEWAY_NAMESPACE} (server-side): " + ", ".join(done), title="Applied", markup=False)
        self.show_rows(result)
        self.end_action(reprobe=False)


__all__ = ["EnvoyFiltersScreen", "filters_content", "target_text"]
