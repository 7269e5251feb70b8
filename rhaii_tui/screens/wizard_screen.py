"""The wizard's main screen: the sidebar and the page on show share one set of keys.

Textual looks up a key's binding along the focused widget's ancestors, so with focus in the
sidebar a page's own keys (r to refresh, A to apply, ...) would do nothing and the footer would not
show them. This screen declares every page's keys as its own bindings (Textual's "dynamic actions":
all bindings declared, `check_action` shows only those of the page on show) and forwards them to that
page. Only public Textual API: BINDINGS, check_action, run_action. The focused widget's ancestors
still come first (the sidebar keeps its arrows and Enter), a focused text field still types the
letters (Textual drops the keys an Input consumes from the bindings after it), and with focus inside
the page its own bindings answer directly.

Pages are imported lazily (the first frame must not wait for them), so their keys are listed here;
tests/test_page_keys.py checks that this list matches every page's BINDINGS.
"""

from __future__ import annotations

from textual.binding import Binding
from textual.screen import Screen

from .pages import PAGES

STEP_KEYS: tuple[Binding, ...] = (  # StepScreen's, every page's first
    Binding("question_mark", "help", "Help", key_display="?", tooltip="Help for this step"),
)
"""The keys every page has (screens/base.py StepScreen.BINDINGS)."""

PAGE_KEYS: dict[int, tuple[Binding, ...]] = {
    0: (  # ConfigureScreen
        Binding("ctrl+s", "save", "Save", tooltip="Save this configuration for the target"),
        Binding("E", "express", "Express", key_display="E",
                tooltip="Deploy everything, several steps at once, with a live timeline"),
    ),
    1: (  # PreflightScreen
        Binding("r", "rerun", "Re-run checks", tooltip="Run every check again"),
        Binding("e", "enable_api", "Enable API", show=False,
                tooltip="Enable the Kubernetes Engine API (when its check failed)"),
    ),
    2: (  # ClusterScreen
        Binding("A", "main", "Create / continue", key_display="A",
                tooltip="The step's main action as the plan stands: create, resize, replace or continue"),
        Binding("r", "refresh", "Refresh", tooltip="Read the cluster and the plan again"),
    ),
    3: (  # SecretsScreen
        Binding("r", "refresh", "Refresh", tooltip="Read the namespace and the secrets again"),
        Binding("ctrl+s", "apply", "Apply", tooltip="Create or update the namespace and the secrets"),
    ),
    4: (  # OperatorsScreen
        Binding("i", "install", "Install", tooltip="Install the operators (rhaii-on-xks installer)"),
        Binding("f", "zoom", "Zoom", tooltip="Give the focused pane the whole screen (f again: back)"),
    ),
    5: (  # DeployScreen
        Binding("A", "apply", "Apply", key_display="A",
                tooltip="Server-side apply of the LLMInferenceService (idempotent)"),
        Binding("f", "zoom", "Zoom", tooltip="Give the focused pane the whole screen (f again: back)"),
        Binding("l", "show_tab('dp-tab-logs')", "Logs", show=False),
        Binding("m", "show_tab('dp-tab-ms')", "Milestones", show=False),
        Binding("d", "show_tab('dp-tab-diag')", "Diagnosis", show=False),
    ),
    6: (  # EppSidecarScreen
        Binding("P", "patch", "Patch", key_display="P",
                tooltip="Add sidecar.istio.io/inject=true to the EPP pod template (idempotent) and follow the rollout"),
        Binding("r", "refresh", "Refresh", tooltip="Read the EPP deployment and pods again"),
    ),
    7: (  # EnvoyFiltersScreen
        Binding("A", "apply", "Apply", key_display="A",
                tooltip="Server-side apply of the three EnvoyFilters (idempotent)"),
        Binding("r", "refresh", "Refresh", tooltip="Read the EnvoyFilters again"),
    ),
    8: (  # NetpolScreen
        Binding("S", "skip", "Skip", key_display="S", tooltip="Skip NetworkPolicies (PoC); remembered for this target"),
        Binding("A", "apply", "Apply", key_display="A", tooltip="Apply the four NetworkPolicies (production)"),
        Binding("r", "refresh", "Refresh", tooltip="Read the policies again"),
        Binding("t", "test_live", "Test live", tooltip="Prove reachability on the cluster with short-lived probe pods"),
        Binding("v", "toggle_view", "Next view", show=False, tooltip="Criteria, preview, live"),
    ),
    9: (  # VerifyScreen
        Binding("r", "run", "Run checks", tooltip="Run step 9's checks against the live service"),
        Binding("x", "export", "Export report", tooltip="Write the PoC report (Markdown + JSON)"),
    ),
    10: (  # PerformanceScreen
        Binding("r", "run", "Run", tooltip="Run the cache proof, then the throughput runs"),
        Binding("s", "stop", "Stop", tooltip="Stop the run (the throughput result covers what was sent)"),
        Binding("x", "export", "Export report", tooltip="Write the PoC report (Markdown + JSON + SVG)"),
    ),
    11: (  # IdentityScreen
        Binding("r", "run", "Read again", tooltip="Read the model, logs and pod specs of every replica"),
        Binding("x", "export", "Export report", tooltip="Write the PoC report (Markdown + JSON + SVG)"),
    ),
}
"""Each page's own keys (its class's BINDINGS after STEP_KEYS), by page number."""


def _forwarded(number: int, binding: Binding) -> Binding:
    """`binding` of page `number` as a screen binding that runs it on that page."""
    return Binding(binding.key, f"page_key({number!r}, {binding.action!r})", binding.description,
                   show=binding.show, key_display=binding.key_display, tooltip=binding.tooltip)


def _screen_bindings() -> list[Binding]:
    """Every page's keys as screen bindings. The footer lists keys in the order they first appear in
    BINDINGS, so the keys are ordered to keep each page's own order (a topological order of the
    pages' orders; ties: first appearance)."""
    per_page = [(p.number, STEP_KEYS + PAGE_KEYS.get(p.number, ())) for p in PAGES]
    keys: list[str] = []
    after: dict[str, set[str]] = {}
    for _number, bindings in per_page:
        for i, b in enumerate(bindings):
            if b.key not in keys:
                keys.append(b.key)
            after.setdefault(b.key, set()).update(x.key for x in bindings[:i])
    order: list[str] = []
    while len(order) < len(keys):
        ready = [k for k in keys if k not in order and after[k] <= set(order)]
        order.append(ready[0] if ready else next(k for k in keys if k not in order))  # no cycle today
    rank = {k: i for i, k in enumerate(order)}
    forwarded = [_forwarded(number, b) for number, bindings in per_page for b in bindings]
    return sorted(forwarded, key=lambda b: rank[b.key])


class WizardScreen(Screen):
    """The default screen of RhaiiApp."""

    BINDINGS = _screen_bindings()

    def _page_for(self, number: object) -> object | None:
        """The page `number` when it is on show, mounted on this screen, and the focus is outside it."""
        page = getattr(self.app, "current_page", None)
        if page is None or getattr(page, "number", None) != number or not page.is_mounted or page.screen is not self:
            return None
        focused = self.focused
        if focused is not None and page in focused.ancestors_with_self:
            return None  # focus inside the page: its own bindings answer (no duplicate in the footer)
        return page

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action != "page_key":
            return True
        number, page_action = parameters
        page = self._page_for(number)
        if page is None:
            return False
        name, _, _ = str(page_action).partition("(")
        return page.check_action(name, ())  # the page's own dynamic enabling, if any

    async def action_page_key(self, number: int, action: str) -> None:
        page = self._page_for(number)
        if page is not None:
            await self.app.run_action(action, page)
