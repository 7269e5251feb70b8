"""Keyed tables updated in place (the dolphie / k9s pattern) and the step-5 pod table.

`KeyedTable(DataTable)`: rows keyed by an id (a pod's "namespace/name", an operator's key). Feed
it whole rows or partial cell dicts with `upsert(key, cells)`, drop rows with `remove(key)`, or
hand it `steps.podlife.RowDiff`s with `apply_diffs(diffs)`. It keeps the model cells and what it
last showed per cell, and updates only the cells whose shown value changed (`update_cell`): no
`clear()` (which would reset the cursor and the scroll), a re-sort only when rows were added, the
whole batch inside `app.batch_update()`. Widths are fixed per column so updates never re-measure
a column.

Cell updates repaint only their row. DataTable.update_cell bumps one table-wide counter that is
part of every render cache key, so after any change every visible cell is rendered again (~0.1 ms
each: 60 ms a frame for a screenful of pods, measured in benchmarks/pod_table.py). `update_cell`
here stores the value, drops the cached renders of that cell and its row only (just before the
next render) and refreshes that row's region. Structural changes (add, remove, sort, widths) keep
DataTable's own invalidation.

`PodTableWidget(KeyedTable)`: the step-5 lifecycle table. One row per workload pod (labelled r1,
r2, ... in creation order) and the EPP pod: the guide's stage (coloured by severity: amber past the
guide's range, red far past it or in a failure state), restarts, time in the current stage vs the
guide's expected range, last milestone, ready containers, age, node, pod name.

Cell values are `Content` (never parsed as markup, so pod names and log text are safe).
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping, Sequence

from textual._two_way_dict import TwoWayDict
from textual.content import Content
from textual.strip import Strip
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, ColumnKey, RowKey

# a shown cell: (text, style)
Shown = tuple[str, str]
TABLE_MUTED = "$foreground-darken-3"  # muted text in table cells (>= 4.5:1 on the default themes)

SEVERITY_STYLE: dict[str, str] = {
    "ok": "",
    "amber": "bold $warning",
    "red": "bold $error",
}


class KeyedTable(DataTable):
    """A DataTable with keyed rows updated cell by cell. Subclasses set COLUMNS and may override
    `shown_cells(key, model)` (model cells -> {column: (text, style)}) and `sort_key(key, model)`."""

    DEFAULT_CSS = """
    KeyedTable {
        height: auto;
        max-height: 100%;
        scrollbar-size-vertical: 1;
        scrollbar-size-horizontal: 1;
    }
    """

    COLUMNS: tuple[tuple[str, str, int | None], ...] = ()
    """(column key, header label, width or None for auto)."""

    SORTED = False
    """Keep rows ordered by `sort_key` (re-sorted only when rows were added)."""

    FILL_COLUMN: str | None = None
    """A column that takes the width left over (at least its declared width)."""

    NARROW_COLUMNS: tuple[tuple[str, str, int | None], ...] | None = None
    """The columns shown when the table is narrower than NARROW_BELOW cells (a narrow terminal):
    fewer and narrower, so that what matters stays readable instead of scrolling off to the right."""
    NARROW_FILL_COLUMN: str | None = None
    NARROW_BELOW = 0

    def __init__(self, *, columns: Sequence[tuple[str, str, int | None]] | None = None,
                 cursor_type: str = "row", id: str | None = None, classes: str | None = None) -> None:
        super().__init__(cursor_type=cursor_type, zebra_stripes=False, id=id, classes=classes)  # type: ignore[arg-type]
        self.columns_spec = tuple(columns or self.COLUMNS)
        self.column_keys = tuple(c[0] for c in self.columns_spec)
        self._model: dict[str, dict[str, Any]] = {}
        self._shown: dict[str, dict[str, Shown]] = {}
        # counters (tests and benchmarks read them)
        self.cell_updates = 0
        self.rows_added = 0
        self.rows_removed = 0
        self._dirty_cells: set[tuple[str, str]] = set()  # cached renders to drop before the next render
        self.wide_columns = self.columns_spec
        self.all_column_keys = tuple(dict.fromkeys(
            self.column_keys + tuple(c[0] for c in (self.NARROW_COLUMNS or ()))))
        self.narrow = False
        for key, label, width in self.columns_spec:
            self.add_column(label, key=key, width=width)

    def on_resize(self) -> None:
        self._fit_columns_to_width()
        self._fit_fill_column()

    def watch_show_vertical_scrollbar(self, _shown: bool) -> None:
        self._fit_fill_column()  # the fill column gives the scrollbar its room (and takes it back)

    # the columns shown at this width ---------------------------------------------------------------
    @property
    def fill_column(self) -> str | None:
        return self.NARROW_FILL_COLUMN if self.narrow else self.FILL_COLUMN

    def column_width(self, key: str) -> int:
        """The width of a shown column (0 when it is not shown)."""
        column = self.columns.get(ColumnKey(key))  # type: ignore[call-overload]
        return int(column.width) if column is not None else 0

    def _fit_columns_to_width(self) -> None:
        if self.NARROW_COLUMNS is None or not self.size.width:
            return
        narrow = self.size.width < self.NARROW_BELOW
        if narrow == self.narrow:
            return
        cursor_key = self._cursor_key()
        self.narrow = narrow
        self.columns_spec = tuple(self.NARROW_COLUMNS if narrow else self.wide_columns)
        self.column_keys = tuple(c[0] for c in self.columns_spec)
        self.clear(columns=True)
        for key, label, width in self.columns_spec:
            self.add_column(label, key=key, width=width)
        for key, model in self._model.items():  # cells fitted to the new widths
            self._shown[key] = self.shown_cells(key, model)
        for key, shown in self._shown.items():
            self.add_row(*[self._content(shown.get(c, ("", ""))) for c in self.column_keys], key=key)
        self._needs_sort = True
        self.resort()
        if cursor_key is not None and cursor_key in self._model:
            self._restore_cursor(cursor_key)

    def reshow(self) -> None:
        """Compute every row's shown cells again (their text depends on a column's width)."""
        for key, model in self._model.items():
            old = self._shown[key]
            for c, v in self.shown_cells(key, model).items():
                if old.get(c) != v:
                    old[c] = v
                    if c in self.column_keys:
                        self.update_cell(key, c, self._content(v))

    # cell updates that repaint one row ----------------------------------------------------------
    def update_cell(self, row_key: Any, column_key: Any, value: Any, *, update_width: bool = False) -> None:
        if update_width:
            super().update_cell(row_key, column_key, value, update_width=True)
            return
        rk = row_key if isinstance(row_key, RowKey) else RowKey(row_key)
        ck = column_key if isinstance(column_key, ColumnKey) else ColumnKey(column_key)
        if rk not in self._row_locations or ck not in self._column_locations:
            raise CellDoesNotExist(f"No cell exists for row_key={row_key!r}, column_key={column_key!r}.")
        self._data[rk][ck] = value
        self._dirty_cells.add((rk.value, ck.value))
        self.refresh_row(self._row_locations.get(rk))

    def render_lines(self, crop: Any) -> list[Strip]:
        if self._dirty_cells:
            self._drop_cached_renders()
        return super().render_lines(crop)

    def _drop_cached_renders(self) -> None:
        cells, self._dirty_cells = self._dirty_cells, set()
        rows = {r for r, _c in cells}
        cell_cache = self._cell_render_cache
        for k in [k for k in cell_cache.keys() if (k[0], k[1]) in cells]:
            cell_cache.discard(k)
        row_cache = self._row_render_cache
        for k in [k for k in row_cache.keys() if k[0] in rows]:
            row_cache.discard(k)
        indices = {self._row_locations.get(RowKey(r)) for r in rows if RowKey(r) in self._row_locations}
        renderables = self._row_renderable_cache
        for k in [k for k in renderables.keys() if k[1] in indices]:
            renderables.discard(k)
        self._line_cache.clear()  # assembled from the row renders: cheap to redo

    def _fit_fill_column(self) -> None:
        fill = self.fill_column
        if fill is None or not self.size.width or fill not in self.column_keys:
            return
        spec = {k: w for k, _label, w in self.columns_spec}
        minimum = spec.get(fill) or 10
        pad = 2 * self.cell_padding
        used = sum((w or 0) + pad for k, w in spec.items() if k != fill)
        scrollbar = self.styles.scrollbar_size_vertical if self.show_vertical_scrollbar else 0
        width = max(minimum, self.size.width - used - pad - scrollbar)
        if self._set_column_width(fill, width):
            self.reshow()  # cells fitted to the column's width (e.g. names shortened in the middle)

    def _set_column_width(self, key: str, width: int) -> bool:
        """Give a shown column a new width (re-laid out on the next refresh); False when it had it."""
        column = self.columns.get(ColumnKey(key))  # type: ignore[call-overload]
        if column is None or column.width == width:
            return False
        column.width = width
        self._update_count += 1
        self._require_update_dimensions = True
        self.refresh(layout=True)
        return True

    # reading -------------------------------------------------------------------------------------
    def row_keys(self) -> list[str]:
        """The row keys in display order."""
        return [str(row.key.value) for row in self.ordered_rows]

    def model(self, key: str) -> dict[str, Any] | None:
        m = self._model.get(key)
        return dict(m) if m is not None else None

    def shown_text(self, key: str, column: str) -> str:
        """The text shown in a cell ('' when absent)."""
        return self._shown.get(key, {}).get(column, ("", ""))[0]

    def __contains__(self, key: object) -> bool:
        return key in self._model

    # what a row shows ----------------------------------------------------------------------------
    def shown_cells(self, key: str, model: Mapping[str, Any]) -> dict[str, Shown]:
        return {c: (str(model.get(c, "") or ""), "") for c in self.all_column_keys}

    def sort_key(self, key: str, model: Mapping[str, Any]) -> Any:
        return key

    @staticmethod
    def _content(shown: Shown) -> Content:
        text, style = shown
        # `$text-muted` is an "auto" colour (a share of the text colour that contrasts with the
        # background), and a table cell has no background of its own to contrast with: it came out
        # black on the dark theme. A fixed muted colour of the theme reads on every row.
        style = style.replace("$text-muted", TABLE_MUTED)
        return Content.styled(text, style) if style else Content(text)

    # writing -------------------------------------------------------------------------------------
    def upsert(self, key: str, cells: Mapping[str, Any]) -> bool:
        """Add the row or update the cells that changed. True when the row was added."""
        model = self._model.get(key)
        if model is None:
            model = dict(cells)
            self._model[key] = model
            shown = self.shown_cells(key, model)
            self._shown[key] = shown
            self.add_row(*[self._content(shown.get(c, ("", ""))) for c in self.column_keys], key=key)
            self.rows_added += 1
            self._needs_sort = True
            return True
        changed = False
        for c, v in cells.items():
            if model.get(c) != v:
                model[c] = v
                changed = True
        if not changed:
            return False
        shown = self.shown_cells(key, model)
        old = self._shown[key]
        for c, v in shown.items():
            if old.get(c) != v:
                old[c] = v
                if c in self.column_keys:
                    self.update_cell(key, c, self._content(v))
                    self.cell_updates += 1
        return False

    def remove(self, key: str) -> bool:
        """Remove a row; the cursor stays on the row it was on."""
        if key not in self._model:
            return False
        cursor_key = self._cursor_key()
        del self._model[key]
        del self._shown[key]
        self.remove_row(key)
        self.rows_removed += 1
        if cursor_key is not None and cursor_key != key:
            self._restore_cursor(cursor_key)
        return True

    def _cursor_key(self) -> str | None:
        if self.cursor_type != "row" or not (0 <= self.cursor_row < self.row_count):
            return None
        return str(self.ordered_rows[self.cursor_row].key.value)

    def _restore_cursor(self, key: str) -> None:
        index = self.get_row_index(key)
        if index != self.cursor_row:
            self.move_cursor(row=index, animate=False, scroll=False)

    def sync_keys(self, keys: Iterable[str]) -> None:
        """Remove every row whose key is not in `keys`."""
        keep = set(keys)
        for k in [k for k in self._model if k not in keep]:
            self.remove(k)

    def apply_diffs(self, diffs: Iterable[Any]) -> int:
        """Apply podlife.RowDiff-like objects (op add/update/remove, key, cells) in order, as one
        screen update. Returns how many diffs were applied."""
        n = 0
        with self.app.batch_update():
            for d in diffs:
                n += 1
                if d.op == "remove":
                    self.remove(d.key)
                else:
                    self.upsert(d.key, self.extra_cells(d.key, d.cells) if d.op == "add" else d.cells)
            self.resort()
        return n

    def extra_cells(self, key: str, cells: Mapping[str, Any]) -> Mapping[str, Any]:
        """Hook: cells to add to a new row's model (e.g. its label)."""
        return cells

    def resort(self) -> None:
        """Order rows by `sort_key` (only after rows were added); the cursor stays on its row."""
        if not (self.SORTED and getattr(self, "_needs_sort", False)):
            return
        self._needs_sort = False
        keys = [row.key for row in self.ordered_rows]
        want = sorted(keys, key=lambda rk: self.sort_key(str(rk.value), self._model[str(rk.value)]))
        if want == keys:
            return
        cursor_key = self._cursor_key()
        # what DataTable.sort does, with our own order (the model, not the shown cells)
        self._row_locations = TwoWayDict({rk: i for i, rk in enumerate(want)})
        self._update_count += 1
        self.refresh()
        if cursor_key is not None:
            self._restore_cursor(cursor_key)


# --- the step-5 pod table ------------------------------------------------------------------------

_GKE_NODE = re.compile(r"^gke-.+-([a-z0-9]{4,5})$")


def short_node(node: str | None) -> str:
    """GKE node names share the cluster and pool prefix: show the unique suffix ('…hl2c')."""
    if not node or node == "-":
        return "-"
    m = _GKE_NODE.match(node)
    return f"…{m.group(1)}" if m else node


def fit_middle(name: str, width: int) -> str:
    """A pod name in `width` cells, shortened in the middle: the end that tells pods apart (the
    ReplicaSet hash and the pod's own suffix, '…6f7d9c8b5-a1b2c') stays whole."""
    if width <= 0 or len(name) <= width:
        return name
    if width < 2:
        return name[-width:]
    parts = name.split("-")
    tail = "-" + "-".join(parts[-2:]) if len(parts) >= 3 else ""
    if tail and width >= len(tail) + 4:
        return name[: width - len(tail) - 1] + "…" + tail
    return "…" + name[-(width - 1):]


def short_expected(text: str) -> str:
    """'3-5 min' -> '3-5m', '30-60 s' -> '30-60s'."""
    return text.replace(" min", "m").replace(" s", "s")


def stage_style(stage: str, severity: str) -> str:
    if severity in ("amber", "red"):
        return SEVERITY_STYLE[severity]
    if stage.startswith("Running") and stage.endswith(("1/1", "2/2", "3/3")):
        return "$success"
    return ""


def replica_order(label: str) -> tuple[int, int, str]:
    """r1 < r2 < r10 < EPP."""
    if label.startswith("r") and label[1:].isdigit():
        return (0, int(label[1:]), "")
    return (1, 0, label)


class PodTableWidget(KeyedTable):
    """The step-5 pod lifecycle table (rows keyed 'namespace/name')."""

    COLUMNS = (
        # what tells the pod's progress first (it fits a 120-column terminal); the rest scrolls
        ("label", "#", 3),
        ("stage", "Stage", 20),
        ("restarts", "Rst", 3),
        ("in_stage", "In stage (guide)", 16),
        ("milestone", "Last milestone", 29),
        ("ready", "Ready", 5),
        ("age", "Age", 6),
        ("node", "Node", 7),
        ("name", "Pod", 44),
    )
    SORTED = True
    # below 70 cells (an 80-column terminal): the replica, its stage (whole: "Init:CrashLoopBackOff"),
    # its time against the guide and the pod's unique suffix; the rest is in its logs and milestones
    NARROW_COLUMNS = (
        ("label", "#", 3),
        ("stage", "Stage", 14),
        ("in_stage", "In stage", 13),
        ("name", "Pod", 6),
    )
    NARROW_FILL_COLUMN = "stage"
    NARROW_BELOW = 70
    NARROW_IN_STAGE = (8, 14)
    """Narrow: the In stage column as wide as its longest text within these bounds ("7m (3-5m)" or
    "-"), so that the stage column keeps the rest ("Init:CrashLoopBackOff" whole at 80 columns)."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.labels: dict[str, str] = {}  # key -> r1 / EPP

    def upsert(self, key: str, cells: Mapping[str, Any]) -> bool:
        added = super().upsert(key, cells)
        self._fit_in_stage()
        return added

    def remove(self, key: str) -> bool:
        removed = super().remove(key)
        self._fit_in_stage()
        return removed

    def on_resize(self) -> None:
        super().on_resize()
        self._fit_in_stage()

    def _fit_in_stage(self) -> None:
        if not self.narrow or "in_stage" not in self.column_keys:
            return
        low, high = self.NARROW_IN_STAGE
        longest = max((len(shown.get("in_stage", ("", ""))[0]) for shown in self._shown.values()), default=0)
        width = max(low, min(high, longest))
        if self._set_column_width("in_stage", width):
            self.columns_spec = tuple((k, label, width if k == "in_stage" else w) for k, label, w in self.columns_spec)
            self._fit_fill_column()

    def extra_cells(self, key: str, cells: Mapping[str, Any]) -> Mapping[str, Any]:
        out = dict(cells)
        out.setdefault("label", self.labels.get(key, ""))
        return out

    def sort_key(self, key: str, model: Mapping[str, Any]) -> Any:
        return replica_order(str(model.get("label") or "~")) + (key,)

    def shown_cells(self, key: str, model: Mapping[str, Any]) -> dict[str, Shown]:
        stage = str(model.get("stage") or "")
        severity = str(model.get("severity") or "ok")
        in_stage = str(model.get("in_stage") or "-")
        expected = short_expected(str(model.get("expected") or ""))
        if in_stage != "-" and expected:
            in_text = f"{in_stage} ({expected})"
        else:
            in_text = in_stage
        label = str(model.get("label") or "")
        return {
            "label": (label, "bold $accent" if label == "EPP" else "bold"),
            "stage": (stage, stage_style(stage, severity)),
            "ready": (str(model.get("ready") or ""), ""),
            "restarts": (str(model.get("restarts") or "0"), "$warning" if str(model.get("restarts") or "0") != "0"
                         else ""),
            "in_stage": (in_text, SEVERITY_STYLE.get(severity, "") if in_stage != "-" else "$text-muted"),
            "age": (str(model.get("age") or ""), "$text-muted"),
            "node": (short_node(model.get("node")), ""),
            "milestone": (str(model.get("milestone") or ""), "$text-muted"),
            "name": (fit_middle(str(model.get("name") or key.split("/")[-1]), self.column_width("name")), ""),
        }

    def has_timed_rows(self) -> bool:
        """A row shows a time in its stage (a pod not Ready yet): its cells change with time alone."""
        return any(str(m.get("in_stage") or "-") != "-" for m in self._model.values())

    def set_label(self, key: str, label: str) -> None:
        self.labels[key] = label
        if key in self._model:
            self.upsert(key, {"label": label})
            self._needs_sort = True


__all__ = ["KeyedTable", "PodTableWidget", "fit_middle", "short_node", "short_expected", "replica_order", "SEVERITY_STYLE"]
