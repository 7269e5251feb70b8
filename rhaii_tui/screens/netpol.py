"""Step 8 (optional): NetworkPolicies — when to apply, when to skip, and the isolation they give.

- The guide's criteria (`steps.netpol.CRITERIA`): skip for a PoC, apply for production; the user
  chooses with Skip / Apply. The choice is remembered for the target (`netpol.choose`, the state
  file), so the sidebar shows "skipped" on this run and the next.
- Two reachability tables (`widgets.reachability`): "If applied" from the rendered policies on top
  of the live ones (`netpol.preview`) — before applying it says whether a path the deployment needs
  (the gateway to vLLM :8000 and to the EPP :9002, DNS, model download, istiod) would break; and
  "Live now" from the cluster's policies (`netpol.live_report`): who can reach vLLM :8000 and the
  EPP :9002, and what vLLM can reach — the isolation the user gets, or that there is none.
- Apply (`netpol.apply`) runs in a worker; when the preview shows a needed path cut off, it asks
  first (type the namespace to apply anyway) and says so again after applying.
- The page reads the cluster when shown, every few seconds while on show, on `r` and after an
  action, so it is right on re-open.
- The cluster's enforcement (Dataplane V2 or Calico) is read from GKE: on a cluster that does not
  enforce NetworkPolicies the page says so before applying (with the options and their costs), asks
  before storing them anyway, and never reports the namespace as isolated.
- Test live (`t`, `netpol.observe`): probe pods try vLLM :8000 from where the policies must let them
  through and from where they must not; the live table shows what they observed next to the intent.
"""

from __future__ import annotations

from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.widgets import Button, Label, Static, TabbedContent, TabPane

from ..steps import netpol
from ..steps.base import Status, StepState
from ..widgets.reachability import ReachabilityPanel
from . import register_step_screen
from .epp_sidecar import ProbingScreen, error_state

TAB_CRITERIA, TAB_PREVIEW, TAB_LIVE = "np-tab-criteria", "np-tab-preview", "np-tab-live"


def criteria_content(key: str) -> Content:
    c = netpol.CRITERIA[key]
    parts: list[Any] = [(f"{c['title']} if", "bold")]
    for line in c["when"]:
        parts += ["\n", ("• ", "$text-muted"), line]
    return Content.assemble(*parts)


def choice_content(choice: str | None, state: Any) -> Content:
    status = str(getattr(getattr(state, "status", None), "value", "")) if state is not None else ""
    if choice == netpol.SKIP:
        text = [("Your choice: ", "$text-muted"), ("skip (PoC)", "bold")]
        if status == "done":
            text.append(("; the policies applied earlier are still in place", "$warning"))
        else:
            text.append((" — remembered for this target", "$text-muted"))
        return Content.assemble(*text)
    if choice == netpol.APPLY:
        return Content.assemble(("Your choice: ", "$text-muted"), ("apply (production)", "bold"))
    return Content.styled("No choice yet: read the criteria, then Skip or Apply.", "$text-muted")


def verdict_content(preview: Any) -> Content:
    """One line on the criteria tab: would applying break a path the deployment needs; and whether
    the cluster enforces NetworkPolicies at all."""
    if getattr(preview, "enforced", None) is False:
        return Content.assemble(("⚠ This cluster does not enforce NetworkPolicies: ", "bold $warning"),
                                ("applying stores them without isolating anything. ", "$warning"),
                                ("\n".join(preview.options), "$text-muted"))
    if preview.broken:
        return Content.assemble(("✘ Applying would break the deployment: ", "bold $error"),
                                ("; ".join(w.split(" (", 1)[0] for w in preview.warnings()), "$error"),
                                (" (see If applied).", "$text-muted"))
    return Content.assemble(("✔ Applying keeps every path the deployment needs", "$success"),
                            (" (see If applied for who could reach what).", "$text-muted"))


@register_step_screen(8)
class NetpolScreen(ProbingScreen):
    """Step 8: choose, preview, apply, and see the isolation."""

    DEFAULT_CSS = """
    NetpolScreen {
        .step-state { max-height: 3; }  /* wraps: whole at 80 columns */
        .step-purpose { max-height: 3; }
        .step-commands CommandList { max-height: 3; }
        .step-body { margin: 0; }
        #np-actions { height: auto; margin: 0 1 0 0; }
        #np-buttons { width: auto; height: 1; }
        #np-skip { margin: 0 1 0 0; min-width: 12; }
        #np-apply { margin: 0 1 0 0; min-width: 20; }
        #np-test { margin: 0 1 0 0; min-width: 11; }
        #np-choice { width: 1fr; height: auto; }  /* wraps: the hint is read whole */
        #np-criteria { height: 1fr; padding: 1 1 0 1; }
        #np-criteria-cols { height: auto; }
        .np-criteria-col { width: 1fr; height: auto; padding: 0 2 0 0; }
        #np-note { color: $text-muted; height: auto; margin: 1 0 0 0; }
        #np-verdict { height: auto; margin: 1 0 0 0; }
        #np-tabs { height: 1fr; min-height: 8; }
        #np-tabs TabPane { padding: 0; }
        #np-tabs ContentSwitcher { height: 1fr; }
    }
    """

    BINDINGS = [
        Binding("S", "skip", "Skip", key_display="S", tooltip="Skip NetworkPolicies (PoC); remembered for this target"),
        Binding("A", "apply", "Apply", key_display="A", tooltip="Apply the four NetworkPolicies (production)"),
        Binding("r", "refresh", "Refresh", tooltip="Read the policies again"),
        Binding("t", "test_live", "Test live", tooltip="Prove reachability on the cluster with short-lived probe pods"),
        Binding("v", "toggle_view", "Next view", show=False, tooltip="Criteria, preview, live"),
    ]

    def __init__(self, number: int = 8, **kwargs: Any) -> None:
        super().__init__(number, **kwargs)
        self.session_choice: str | None = None  # when there is no state file to remember it
        self._auto_tab = True  # choose the tab from what is live (first read, after an action)
        self.preview_report: Any = None
        self.live_report: Any = None
        self.observed: dict[str, Any] = {}  # row key -> netpol.Observation of the last live test

    # composition ------------------------------------------------------------------------------
    def compose_body(self) -> ComposeResult:
        with Horizontal(id="np-actions"):
            with Horizontal(id="np-buttons"):
                yield Button("Skip (PoC)", id="np-skip", compact=True,
                             tooltip="Skip: no NetworkPolicies; remembered for this target (S)")
                yield Button("Apply (production)", id="np-apply", compact=True,
                             tooltip="Apply the four NetworkPolicies (A); asks first if a needed path would break")
                yield Button("Test live", id="np-test", compact=True,
                             tooltip="Run probe pods on the cluster: who really reaches vLLM :8000 (t)")
            yield Label(choice_content(None, None), id="np-choice")
        with TabbedContent(id="np-tabs", initial=TAB_CRITERIA):
            with TabPane("Skip or apply?", id=TAB_CRITERIA):
                with VerticalScroll(id="np-criteria"):
                    with Horizontal(id="np-criteria-cols"):
                        yield Static(criteria_content("skip"), classes="np-criteria-col", id="np-crit-skip")
                        yield Static(criteria_content("apply"), classes="np-criteria-col", id="np-crit-apply")
                    yield Static(netpol.CRITERIA["note"], id="np-note")
                    yield Static("", id="np-verdict")
            with TabPane("If applied (rendered policies)", id=TAB_PREVIEW):
                yield ReachabilityPanel(id="np-preview", empty="The table appears once connected to a cluster.")
            with TabPane("Live now", id=TAB_LIVE):
                yield ReachabilityPanel(id="np-live", empty="The table appears once connected to a cluster.")

    def on_mount(self) -> None:  # Textual calls each class's on_mount: no super() here
        self._show_preview_offline()

    def config_changed(self, cfg: Any) -> None:
        self._auto_tab = True
        super().config_changed(cfg)
        self._show_preview_offline()

    def _show_preview_offline(self) -> None:
        """The rendered set's table needs no cluster: show it before the first read."""
        if self.ctx is not None:
            return
        try:
            rep = netpol.report(netpol.rendered(self.cfg), self.cfg)
        except ValueError as e:
            self.query_one("#np-preview", ReachabilityPanel).show_message(f"Cannot render the policies: {e}",
                                                                          "$error")
            return
        self.show_report("preview", rep)

    # probing ------------------------------------------------------------------------------------
    def probe_data(self, ctx: Any) -> Any:
        from ..cloud.gke import CloudError

        out: dict[str, Any] = {"state": netpol.probe(ctx)}
        try:
            out["preview"] = netpol.preview(ctx)
        except (CloudError, ValueError) as e:
            out["preview"] = error_state(e, "render the policies")
        try:
            out["live"] = netpol.live_report(ctx) if ctx.kube_or_none() is not None else None
        except CloudError as e:
            out["live"] = error_state(e, "read the live policies")
        return out

    def show_probe(self, result: Any) -> None:
        if isinstance(result, StepState):
            self.set_probed_state(result)
            return
        self.show_state(result["state"])
        self.show_report("preview", result.get("preview"))
        self.show_report("live", result.get("live"))
        if self._auto_tab:
            self._auto_tab = False
            data = result["state"].data or {}
            chosen = data.get("choice") or self.session_choice
            preview = result.get("preview")
            breaks = bool(getattr(preview, "broken", None))
            tabs = self.query_one("#np-tabs", TabbedContent)
            if data.get("present") or chosen:
                tabs.active = TAB_LIVE
            elif breaks:  # say it before anything is applied
                tabs.active = TAB_PREVIEW
            else:
                tabs.active = TAB_CRITERIA

    def show_state(self, state: StepState) -> None:
        choice = (state.data or {}).get("choice") or self.session_choice
        if choice == netpol.SKIP and state.status is Status.NOT_STARTED:  # no state file: this session only
            state = StepState(Status.SKIPPED, "NetworkPolicies skipped by choice (PoC; this session only: no state "
                                              "file).", data=state.data)
        if not self.set_probed_state(state):
            return  # the failed action stays on show
        self.query_one("#np-choice", Label).update(choice_content(choice, state))
        for button_id, value in (("#np-skip", netpol.SKIP), ("#np-apply", netpol.APPLY)):
            button = self.query_one(button_id, Button)
            button.variant = "primary" if choice == value else "default"

    def show_report(self, mode: str, report: Any) -> None:
        panel = self.query_one("#np-preview" if mode == "preview" else "#np-live", ReachabilityPanel)
        if report is None:
            panel.show_message("The cluster is not ready yet (step 2).")
            return
        if isinstance(report, StepState):
            panel.show_message(f"{report.summary} {report.fix}".strip(), "$error")
            return
        if mode == "preview":
            self.preview_report = report
        else:
            if self.observed and not getattr(report, "observed", None):
                netpol.with_observations(report, self.observed)
            self.live_report = report
        panel.show(report, self.cfg, mode)
        self._set_tab_title(mode, report.broken)
        if mode == "preview":
            self.query_one("#np-verdict", Static).update(verdict_content(report))

    def _set_tab_title(self, mode: str, broken: bool) -> None:
        tab = self.query_one("#np-tabs", TabbedContent).get_tab(TAB_PREVIEW if mode == "preview" else TAB_LIVE)
        # below 70 cells the three tabs fit only with the short title
        title = ("If applied" if self.size.width and self.size.width < 70 else "If applied (rendered policies)") \
            if mode == "preview" else "Live now"
        tab.label = Content.assemble(title, (" ✘", "bold $error")) if broken else Content(title)

    def on_resize(self) -> None:
        report = getattr(self, "preview_report", None)
        self._set_tab_title("preview", bool(report is not None and report.broken))

    def show_not_connected(self) -> None:
        self.query_one("#np-live", ReachabilityPanel).show_message(
            "Not connected to a cloud: the live table appears once connected.")

    # actions ------------------------------------------------------------------------------------
    def action_toggle_view(self) -> None:
        tabs = self.query_one("#np-tabs", TabbedContent)
        order = (TAB_CRITERIA, TAB_PREVIEW, TAB_LIVE)
        tabs.active = order[(order.index(tabs.active) + 1) % len(order)] if tabs.active in order else TAB_PREVIEW

    @on(Button.Pressed, "#np-skip")
    def _skip_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_skip()

    @on(Button.Pressed, "#np-apply")
    def _apply_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_apply()

    @on(Button.Pressed, "#np-test")
    def _test_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_test_live()

    def _buttons(self, disabled: bool) -> None:
        for button_id in ("#np-skip", "#np-apply", "#np-test"):
            self.query_one(button_id, Button).disabled = disabled

    def action_test_live(self) -> None:
        if not self.lease_first("testing reachability with probe pods", self.action_test_live):
            return
        ctx = self.begin_action()
        if ctx is None:
            return
        self._buttons(True)
        self.query_one("#np-choice", Label).update(Content.styled("probe pods are testing who reaches vLLM…",
                                                                  "$warning"))
        self._test_live(ctx)

    @work(thread=True, group="np-action", exit_on_error=False)
    def _test_live(self, ctx: Any) -> None:
        try:
            seen = netpol.observe(ctx)
            report = netpol.with_observations(netpol.live_report(ctx), seen)
            state = netpol.probe(ctx)
        except Exception as e:  # noqa: BLE001 - shown with its fix
            self.call_ui(self._apply_failed, error_state(e, "test reachability on the cluster"))
            return
        self.call_ui(self._tested, report, state)

    def _tested(self, report: Any, state: StepState) -> None:
        self._buttons(False)
        self.observed = dict(report.observed)
        self.show_state(state)
        self.show_report("live", report)
        self.query_one("#np-tabs", TabbedContent).active = TAB_LIVE
        wrong = report.observed_gaps
        if wrong:
            self.notify("Not as intended: " + "; ".join(o.text() for o in wrong), title="Seen on the cluster",
                        severity="error", timeout=15, markup=False)
        else:
            self.notify(f"{len(report.observed)} probe pods saw what the policies intend.", title="Seen on the cluster",
                        markup=False)
        self.end_action()

    def action_skip(self) -> None:
        ctx = self.begin_action()
        if ctx is None:
            return
        self.session_choice = netpol.SKIP
        self._buttons(True)
        self._skip(ctx)

    @work(thread=True, group="np-action", exit_on_error=False)
    def _skip(self, ctx: Any) -> None:
        try:
            netpol.choose(ctx, netpol.SKIP)
            state = netpol.probe(ctx)
        except Exception as e:  # noqa: BLE001 - shown with its fix
            state = error_state(e, "record the choice")
        self.call_ui(self._skipped, state)

    def _skipped(self, state: StepState) -> None:
        self._buttons(False)
        if state.status is Status.FAILED and "error_kind" in (state.data or {}):
            self.action_error = state
            self.set_state(state)
            self.notify(state.summary, title="Skip", severity="error", markup=False)
        else:
            self.show_state(state)
            if state.status is Status.DONE:
                self.notify("Skipping does not remove the policies already applied; delete them with "
                            f"kubectl delete networkpolicy --all -n {self.cfg.namespace} if you want none.",
                            title="Policies still applied", severity="warning", timeout=10, markup=False)
            else:
                self.notify("NetworkPolicies skipped (PoC). Apply them later from this page.", title="Skipped",
                            markup=False)
        self._auto_tab = True
        self.end_action()

    def action_apply(self) -> None:
        if not self.lease_first("applying the NetworkPolicies", self.action_apply):
            return
        ctx = self.begin_action()
        if ctx is None:
            return
        self._buttons(True)
        self.query_one("#np-choice", Label).update(Content.styled("checking what the policies would block…",
                                                                  "$warning"))
        self._preview_then_apply(ctx)

    @work(thread=True, group="np-action", exit_on_error=False)
    def _preview_then_apply(self, ctx: Any) -> None:
        try:
            before = netpol.preview(ctx)
        except Exception as e:  # noqa: BLE001
            self.call_ui(self._apply_failed, error_state(e, "render the policies"))
            return
        if before.broken:
            self.call_ui(self._confirm_breaking, ctx, before)
            return
        if before.enforced is False:
            self.call_ui(self._confirm_unenforced, ctx, before)
            return
        self._do_apply(ctx, False)

    def _confirm_unenforced(self, ctx: Any, before: Any) -> None:
        """The cluster does not enforce NetworkPolicies: say so, with the options, before storing them."""
        self._confirm_forced(ctx, before, "This cluster does not enforce NetworkPolicies",
                             [before.enforcement, *before.options], "Store them anyway", False,
                             "Applying stores the policies; they isolate nothing until enforcement is enabled:")

    def _confirm_breaking(self, ctx: Any, before: Any) -> None:
        self._confirm_forced(ctx, before, "Apply NetworkPolicies that break the deployment", before.warnings(),
                             "Apply anyway", True, "These policies would block paths the deployment needs:")

    def _confirm_forced(self, ctx: Any, before: Any, title: str, lines: list, label: str, destructive: bool,
                        what: str) -> None:
        """Show the preview and ask (typing the namespace) before applying against the page's advice."""
        from ..widgets.confirm_cost import ConfirmCost

        self.show_report("preview", before)
        self.query_one("#np-tabs", TabbedContent).active = TAB_PREVIEW

        def answered(yes: bool | None) -> None:
            if yes:
                self._apply_forced(ctx)
            else:
                self._buttons(False)
                self.notify("Nothing applied.", title="NetworkPolicies", markup=False)
                self.end_action()

        self.app.push_screen(ConfirmCost(title, lines, None, self.cfg.namespace, confirm_label=label,
                                         destructive=destructive, what=what), callback=answered)

    @work(thread=True, group="np-action", exit_on_error=False)
    def _apply_forced(self, ctx: Any) -> None:
        self._do_apply(ctx, True)

    def _do_apply(self, ctx: Any, force: bool) -> None:
        """Worker thread: apply, then read the step's state."""
        try:
            report = netpol.apply(ctx, force=force)
            state = netpol.probe(ctx)
        except Exception as e:  # noqa: BLE001 - shown with its fix
            self.call_ui(self._apply_failed, error_state(e, "apply the NetworkPolicies"))
            return
        self.call_ui(self._applied, report, state)

    def _apply_failed(self, state: StepState) -> None:
        self._buttons(False)
        self.action_error = state
        self.set_state(state)
        self.query_one("#np-choice", Label).update(Content.styled("✘ " + state.summary, "bold $error"))
        self.notify(state.summary + (f"\n{state.fix}" if state.fix else ""), title="Apply failed", severity="error",
                    timeout=12, markup=False)
        self.end_action(reprobe=False)

    def _applied(self, report: Any, state: StepState) -> None:
        self._buttons(False)
        self.observed = {}  # the policies changed: an earlier test no longer says anything
        self.session_choice = netpol.APPLY
        self.show_state(state)
        self.show_report("live", report)
        self.query_one("#np-tabs", TabbedContent).active = TAB_LIVE
        if report.broken:
            self.notify("Applied, and the deployment is now cut off: " + "; ".join(report.warnings()),
                        title="NetworkPolicies break the deployment", severity="error", timeout=15, markup=False)
        elif report.enforced is False:
            self.notify(f"The policies are stored in {self.cfg.namespace}, but this cluster does not enforce them: "
                        "the namespace is not isolated.", title="Stored, not enforced", severity="warning",
                        timeout=15, markup=False)
        else:
            self.notify(f"The four policies are in place in {self.cfg.namespace}; see who can reach vLLM now.",
                        title="Applied", markup=False)
        self.end_action()


__all__ = ["NetpolScreen", "criteria_content", "choice_content"]
