"""QuotaPane: TPU v6e chips in the region: the limit, what the service needs (4 x replicas), what to
request, the Spot quota beside it, and a warning with the console link when it cannot be read.

    pane = QuotaPane(id="quota")
    pane.show_unchecked(region, replicas)        # before the check ran: no numbers
    pane.show_checking(region, replicas)
    pane.show_reading(data, status)              # data: the quota check's data (QuotaPane.to_dict())

Numbers only ever come from a reading: nothing is shown as enough unless the limit was read.
"""

from __future__ import annotations

from typing import Any, Mapping

from textual.content import Content
from textual.style import Style
from textual.widgets import Static

CHIPS_PER_REPLICA = 4


def link(url: str) -> Content:
    return Content.assemble((url, Style(link=url)))


def _limit_text(limit: Any, unlimited: bool) -> str:
    if unlimited:
        return "unlimited"
    if limit is None:
        return "unknown"
    return f"{limit} chips"


def quota_content(data: Mapping[str, Any], status: str = "") -> Content:
    """The pane's text for a quota reading (the quota check's data)."""
    region = data.get("region", "")
    need = data.get("need", 0)
    replicas = data.get("replicas", 0)
    enough = data.get("enough")
    parts: list[Any] = [("Region ", "$text-muted"), (str(region), "bold"),
                        ("   Need ", "$text-muted"), (f"{need} chips", "bold"),
                        (f" ({replicas} replicas × {CHIPS_PER_REPLICA})", "$text-muted"), "\n"]
    limit = _limit_text(data.get("limit"), bool(data.get("unlimited")))
    parts += [("On-demand limit ", "$text-muted"), (limit, "bold")]
    if enough is True:
        parts += ["  ", ("✔ enough", "bold $success")]
    elif enough is False:
        short = max(0, int(need) - int(data.get("limit") or 0))
        parts += ["  ", (f"✘ {short} chips short", "bold $error")]
    else:
        parts += ["  ", ("▲ could not be read", "bold $warning")]
    spot = _limit_text(data.get("spot_limit"), bool(data.get("spot_unlimited")))
    parts += [("   Spot beside it ", "$text-muted"), (spot, "bold")]
    if data.get("spot_enough") is True and enough is False:
        parts += [(" (would cover it; Spot nodes can be preempted)", "$text-muted")]
    parts.append("\n")
    if enough is True:
        parts += [("Request ", "$text-muted"), "nothing: the limit covers the service."]
    else:
        parts += [("Request ", "bold $warning"), str(data.get("request", ""))]
    warning = str(data.get("warning") or "")
    if enough is None and warning:
        parts += ["\n", ("▲ ", "bold $warning"), (warning, "$warning")]
    url = str(data.get("console_url") or "")
    if url:
        parts += ["\n", ("Console ", "$text-muted"), ("(quotas page)", "$text-muted"), "\n", link(url)]
    return Content.assemble(*parts)


class QuotaPane(Static):
    """The quota pane of step 1."""

    DEFAULT_CSS = """
    QuotaPane {
        height: auto;
        border: round $primary 50%;
        border-title-color: $accent;
        border-title-style: bold;
        padding: 0 1;
        &.-fail { border: round $error; }
        &.-warn { border: round $warning; }
        &.-pass { border: round $success 60%; }
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__("", id=id, classes=classes, markup=False)
        self.border_title = "TPU v6e quota"
        self.data: dict[str, Any] | None = None

    def _set_status(self, status: str) -> None:
        for s in ("pass", "warn", "fail"):
            self.set_class(status == s, f"-{s}")

    def show_unchecked(self, region: str, replicas: int, why: str = "not checked yet") -> None:
        self.data = None
        self._set_status("")
        self.update(Content.assemble(
            ("Region ", "$text-muted"), (region, "bold"), ("   Need ", "$text-muted"),
            (f"{CHIPS_PER_REPLICA * replicas} chips", "bold"),
            (f" ({replicas} replicas × {CHIPS_PER_REPLICA})", "$text-muted"), "\n",
            ("○ ", "$text-muted"), (f"Limit: {why}.", "$text-muted")))

    def show_checking(self, region: str, replicas: int) -> None:
        self.show_unchecked(region, replicas, "checking…")

    def show_reading(self, data: Mapping[str, Any], status: str) -> None:
        self.data = dict(data)
        self._set_status(status)
        self.update(quota_content(data, status))
