"""TargetHeader: two rows on top of the wizard.

Row 1: in simulated mode a SIMULATED badge on a warning-coloured bar (so no one mistakes the
emulator for Google Cloud), the app's name, while another rhaii-tui holds the deploy lease a
"watching · driven by user@host, pid N" tag (before the connection, so a narrow terminal keeps it),
the connection (profile label, or "not connected").
Row 2: the target: project / zone / cluster / namespace (labelled when the width allows).
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

from ..config import DeployConfig


def target_content(cfg: DeployConfig | None, width: int) -> Content:
    """The target line, labelled when it fits in `width` cells, else compact."""
    if cfg is None:
        return Content("")
    parts = (("project", cfg.project or "(not set)"), ("zone", cfg.zone),
             ("cluster", cfg.cluster), ("namespace", cfg.namespace))
    labelled = Content.assemble(*[
        piece for i, (name, value) in enumerate(parts)
        for piece in ((("   " if i else ""), ""), (f"{name} ", "$text-muted"), (value, "bold"))
    ])
    if labelled.cell_length <= width:
        return labelled
    compact = labelled
    for sep in (" / ", "/"):
        compact = Content.assemble(*[
            piece for i, (_name, value) in enumerate(parts)
            for piece in (((sep if i else ""), "$text-muted"), (value, "bold"))
        ])
        if compact.cell_length <= width:
            break
    return compact


class TargetLine(Widget):
    """The target (project / zone / cluster / namespace); picks a format that fits its width."""

    DEFAULT_CSS = """
    TargetLine { height: 1; width: 1fr; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    cfg: reactive[DeployConfig | None] = reactive(None, always_update=True)

    def render(self) -> Content:
        return target_content(self.cfg, self.size.width)


class HeaderBar(Widget):
    """Row 1: SIMULATED badge (simulated mode), the app's name, the connection."""

    DEFAULT_CSS = """
    HeaderBar {
        height: 1;
        background: $primary-muted;
        color: $text;
        text-wrap: nowrap;
        text-overflow: ellipsis;
        &.-simulated { background: $warning; color: black; }
    }
    """

    simulated: reactive[bool] = reactive(False)
    connection: reactive[str] = reactive("not connected")
    lease: reactive[str] = reactive("")
    spend: reactive[str] = reactive("")
    """The cost meter while something billable exists ("$12.34 spent · ≈ $377.00/day"), else empty."""
    """Who else drives this deployment ("watching · driven by user@host, pid N"), else empty
    (screens/lease_ui.py sets it through `TargetHeader.set_lease`)."""

    def render(self) -> Content:
        parts: list = []
        if self.simulated:
            parts.append((" SIMULATED ", "bold $warning on black"))
        parts.append((" rhaii-tui ", "bold"))
        if self.lease:
            parts += [" ", (f" {self.lease} ", "bold reverse")]
        parts += [" ", (self.connection, "" if self.simulated else "$text-muted")]
        if self.spend:
            parts += ["  ", (self.spend, "bold")]
        return Content.assemble(*parts)

    def watch_simulated(self, simulated: bool) -> None:
        self.set_class(simulated, "-simulated")


class TargetHeader(Widget):
    """The wizard's header. Follows `app.cfg` and `app.profile` when the app has them. While connected
    and a cluster exists, the cost meter (spent so far) is read every SPEND_EVERY seconds."""

    SPEND_EVERY = 60.0

    DEFAULT_CSS = """
    TargetHeader {
        dock: top;
        height: 2;
        background: $panel;
        TargetLine { padding: 0 1; }
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)

    def compose(self) -> ComposeResult:
        yield HeaderBar()
        yield TargetLine()

    def on_mount(self) -> None:
        app: Any = self.app
        if hasattr(app, "cfg"):
            self.watch(app, "cfg", self.set_config)
        if hasattr(app, "profile"):
            self.watch(app, "profile", self.set_profile)
        if hasattr(app, "connecting"):
            self.watch(app, "connecting", lambda _connecting: self.set_profile(getattr(app, "profile", None)))
        if hasattr(app, "step_context"):
            self.set_interval(self.SPEND_EVERY, self.refresh_spend)

    def refresh_spend(self) -> None:
        """Read the cost meter in a thread (a few cloud reads), then show it."""
        ctx = self.app.step_context() if getattr(self.app, "profile", None) is not None else None  # type: ignore[attr-defined]
        if ctx is None:
            self.set_spend("")
            return

        def read() -> None:
            from ..spend import read_meter

            meter = read_meter(ctx)
            try:
                self.app.call_from_thread(self.set_spend, meter.text() if meter is not None else "")
            except Exception:  # noqa: BLE001 - the app is closing
                pass

        self.run_worker(read, thread=True, exclusive=True, group="spend", exit_on_error=False)

    def set_spend(self, text: str) -> None:
        self.query_one(HeaderBar).spend = text

    @property
    def simulated(self) -> bool:
        return self.query_one(HeaderBar).simulated

    @property
    def connection(self) -> str:
        return self.query_one(HeaderBar).connection

    def set_lease(self, text: str) -> None:
        self.query_one(HeaderBar).lease = text

    def set_config(self, cfg: DeployConfig | None) -> None:
        self.query_one(TargetLine).cfg = cfg

    def set_profile(self, profile: Any) -> None:
        bar = self.query_one(HeaderBar)
        if profile is None:
            bar.simulated = False
            bar.connection = "connecting…" if getattr(self.app, "connecting", False) else "not connected"
        else:
            bar.simulated = bool(getattr(profile, "simulated", False))
            label = str(getattr(profile, "label", "") or ("Simulated cloud" if bar.simulated else "Google Cloud"))
            bar.connection = f"{label} · no real resources, no charges" if bar.simulated else label
        self.set_class(bar.simulated, "-simulated")
