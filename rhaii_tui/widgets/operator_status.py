"""OperatorStatusTable: step 4's live status, one keyed row per operator and per CRD.

Rows: cert-manager, istiod, the KServe controller, the LWS operator, the inference gateway (with
its address), then the CRDs the guide needs (marked CRD in the Pods column). Each row is waiting / progressing / ready / failed,
with pods ready counts and age (guide time) and a detail (problem pods, the gateway's address or
why it has none, the CRD found). Fed from `steps.operators.OperatorsView`; only changed cells are
updated (`KeyedTable`).
"""

from __future__ import annotations

from typing import Any, Mapping

from ..steps.operators import CRDS, OPERATORS
from .pod_table import KeyedTable, Shown

STATE_LOOK: dict[str, tuple[str, str]] = {
    "ready": ("✔ ready", "bold $success"),
    "progressing": ("◐ progressing", "bold $warning"),
    "waiting": ("○ waiting", "$text-muted"),
    "failed": ("✘ failed", "bold $error"),
    "unknown": ("? unknown", "$text-muted"),
}

SHORT_NAMES: dict[str, str] = {
    "cert-manager": "cert-manager",
    "istiod": "Istio (istiod)",
    "kserve": "KServe controller",
    "lws": "LWS operator",
    "gateway": "Inference gateway",
}


def crd_row_key(key: str) -> str:
    return f"crd:{key}"


class OperatorStatusTable(KeyedTable):
    """Operators and CRDs (rows keyed by the operator key, CRDs by 'crd:<key>')."""

    COLUMNS = (
        ("component", "Component", 20),
        ("state", "State", 13),
        ("pods", "Pods", 5),
        ("age", "Age", 6),
        ("detail", "Detail", 14),
    )
    FILL_COLUMN = "detail"
    # below 70 cells (an 80-column terminal) the detail has no room in a row: it is read whole under
    # the table for the highlighted row (`detail_line`), and the age leaves room for the rest
    NARROW_COLUMNS = (
        ("component", "Component", 20),
        ("state", "State", 13),
        ("pods", "Pods", 5),
    )
    NARROW_BELOW = 70

    def on_mount(self) -> None:
        if not self._model:
            self.placeholder_rows("not connected")

    def placeholder_rows(self, detail: str) -> None:
        """One row per operator and CRD with an unknown state (before the first view)."""
        for spec in OPERATORS:
            self.upsert(spec.key, {"component": SHORT_NAMES.get(spec.key, spec.label), "state": "unknown",
                                   "pods": "-", "age": "-", "detail": detail})
        for spec in CRDS:
            self.upsert(crd_row_key(spec.key), {"component": spec.key, "state": "unknown", "pods": "CRD",
                                                "age": "", "detail": detail})

    def shown_cells(self, key: str, model: Mapping[str, Any]) -> dict[str, Shown]:
        state = str(model.get("state") or "unknown")
        text, style = STATE_LOOK.get(state, (state, ""))
        return {
            "component": (str(model.get("component") or key), "bold" if not key.startswith("crd:") else ""),
            "state": (text, style),
            "pods": (str(model.get("pods") or ""), "$text-muted" if key.startswith("crd:") else ""),
            "age": (str(model.get("age") or ""), "$text-muted"),
            "detail": (str(model.get("detail") or ""), "$error" if state == "failed" else "$text-muted"
                       if state in ("waiting", "unknown") else ""),
        }

    def detail_line(self, key: str | None = None) -> str:
        """'Component: detail' for the highlighted row (or `key`) when its detail does not show
        whole in the table (a narrow terminal, a long detail), else ''."""
        if key is None:
            key = self._cursor_key()
        model = self._model.get(key) if key is not None else None
        if model is None:
            return ""
        detail = str(model.get("detail") or "")
        if not detail or len(detail) <= self.column_width("detail"):
            return ""
        return f"{model.get('component') or key}: {detail}"

    def show_view(self, view: Any) -> None:
        """Update from a steps.operators.OperatorsView (only changed cells)."""
        with self.app.batch_update():
            for r in view.rows:
                detail = r.detail
                if r.key == "gateway" and r.address and r.address not in detail:
                    detail = f"address {r.address}; {detail}"
                self.upsert(r.key, {"component": SHORT_NAMES.get(r.key, r.label), "state": r.state,
                                    "pods": r.ready_text, "age": r.age_text, "detail": detail})
            for c in view.crds:
                # the component column names the kind already: the API group says the rest, and fits
                group = c.name.split(".", 1)[1] if c.name and "." in c.name else c.name
                self.upsert(crd_row_key(c.key), {"component": c.key, "state": c.state, "pods": "CRD",
                                                 "age": "", "detail": group or "not present"})


__all__ = ["OperatorStatusTable", "STATE_LOOK", "crd_row_key"]
