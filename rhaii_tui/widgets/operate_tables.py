"""Tables of the Operate page.

- `OpsPodTable`: the step-5 pod lifecycle table (widgets/pod_table.py's PodTableWidget, fed with
  steps/podlife.py's PodTable diffs) with the image each replica runs, so a scale or a rolling
  update can be followed pod by pod: r1, r2... in creation order, the guide's stage coloured by
  severity, time in stage against the guide's range, node, image tag, pod name.
- `ChecklistTable`: the scale-out guide's migration checklist, each item's state probed live.

Cells are Content / rich Text, never markup.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from rich.text import Text
from textual.widgets import DataTable

from .pod_table import PodTableWidget, Shown, fit_middle

STATE_STYLE = {"done": "green", "todo": "", "waiting": "yellow", "manual": "cyan", "failed": "bold red"}
STATE_MARK = {"done": "✔", "todo": "·", "waiting": "…", "manual": "?", "failed": "✘"}


def image_tag(image: str) -> str:
    last = (image or "").rsplit("/", 1)[-1]
    if "@" in last:
        return last.split("@", 1)[1][:12]
    return last.split(":", 1)[1] if ":" in last else (last and "latest")


POOL_AT_ZERO_SHORT = "pool at 0"  # a Pending pod's "In stage" while the TPU pool is scaled to zero


class OpsPodTable(PodTableWidget):
    """Pods of the service with their image. Feed it with `show(pods, time_scale, prefix)`."""

    COLUMNS = (
        ("label", "#", 3),
        ("stage", "Stage", 14),
        ("restarts", "Rst", 3),
        ("in_stage", "In stage", 13),
        ("node", "Node", 6),
        ("image", "Image", 8),
        ("name", "Pod", 11),
    )
    FILL_COLUMN = "name"
    # below 70 cells (an 80-column terminal): the step-5 table's narrow columns (inherited)

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._source: Any = None
        self._time_scale: float | None = None
        self.prefix = ""

    def shown_cells(self, key: str, model: Mapping[str, Any]) -> dict[str, Shown]:
        shown = super().shown_cells(key, model)
        name = str(model.get("name") or key.split("/")[-1])
        if self.prefix and name.startswith(self.prefix):
            name = name[len(self.prefix):]
        shown["name"] = (fit_middle(name, self.column_width("name")), "")
        shown["image"] = (image_tag(str(model.get("image") or "")), "")
        if model.get("pool_at_zero") and str(model.get("stage") or "") == "Pending":
            # not late against the guide's 1-5 min: there is no TPU node until the pool is resumed
            shown["stage"] = ("Pending", "")
            shown["in_stage"] = (POOL_AT_ZERO_SHORT, "$text-muted")
        return shown

    def show(self, pods: Iterable[Mapping[str, Any]], *, time_scale: float = 1.0, prefix: str = "",
             pool_at_zero: bool = False) -> None:
        """The live pods (dicts) as they are now: rows come, go and change cell by cell.
        `pool_at_zero`: the TPU pool is scaled to zero, so Pending pods wait for a node (not late)."""
        from ..steps.podlife import PodTable, pod_key, to_epoch

        if self._source is None or self._time_scale != time_scale:
            self._source = PodTable(time_scale=time_scale)
            self._time_scale = time_scale
            self.sync_keys(())
        self.prefix = prefix
        pods = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
        self.apply_diffs(self._source.resync(pods) + self._source.tick())
        order = sorted(pods, key=lambda p: (to_epoch((p.get("metadata") or {}).get("creationTimestamp")) or 0,
                                            (p.get("metadata") or {}).get("name", "")))
        for i, p in enumerate(order, 1):
            key = pod_key(p)
            if key not in self:
                continue
            containers = (p.get("spec") or {}).get("containers") or []
            main = next((c for c in containers if c.get("name") == "main"), containers[0] if containers else {})
            self.upsert(key, {"image": main.get("image") or "", "pool_at_zero": bool(pool_at_zero)})
            if self.labels.get(key) != f"r{i}":
                self.set_label(key, f"r{i}")
        self.resort()


class ChecklistTable(DataTable):
    """The scale-out guide's migration checklist (steps/operate.py ItemState)."""

    DEFAULT_CSS = """
    ChecklistTable {
        height: auto;
        max-height: 12;
        scrollbar-size-vertical: 1;
    }
    """

    COLUMNS = (("n", "#"), ("state", "State"), ("title", "Item"), ("evidence", "Evidence"))

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False, show_cursor=False)
        self._keys: list[str] = []

    def on_mount(self) -> None:
        for key, label in self.COLUMNS:
            self.add_column(label, key=key)

    def show(self, items: Iterable[Any]) -> None:
        rows = []
        for i in items:
            style = STATE_STYLE.get(i.state, "")
            rows.append((i.item.key, [Text(str(i.item.number)),
                                      Text(f"{STATE_MARK.get(i.state, '')} {i.state}", style=style),
                                      Text(i.item.title), Text(i.evidence)]))
        keys = [k for k, _ in rows]
        if keys == self._keys:
            for key, cells in rows:
                for (col, _label), cell in zip(self.COLUMNS, cells):
                    self.update_cell(key, col, cell)
            return
        self.clear()
        for key, cells in rows:
            self.add_row(*cells, key=key)
        self._keys = keys
