"""Who can reach whom under a set of NetworkPolicies: the step-8 reachability table.

`ReachabilityTable(KeyedTable)`: one row per standard probe of `cloud.netpol` (`Row`: allowed,
expected, required, policies, reason), grouped the way a user asks the question:

    Who can reach vLLM :8000        gateway ✔ allowed, pod in another namespace ✔ denied, ...
    Who can reach the EPP           gateway → :9002, monitoring → :9090, ...
    What vLLM can reach             kube-dns:53/UDP, internet:443 (model download), ...
    What the EPP can reach          Kubernetes API:443, istiod:15012

Result cells carry a mark: ✔ as the guide intends, ✘ (red) a path the deployment needs is denied,
⚠ (amber) more open or more closed than the guide intends. Rows are keyed by probe, updated cell by
cell (polling again keeps the cursor where it is).

`ReachabilityPanel`: a headline (whether a needed path breaks, who reaches vLLM), the table, and
the highlighted row's explanation (which policies decided, egress and ingress side).
Feed it with `show(report, cfg, mode)` — a `steps.netpol.NetpolReport`, mode "preview" (the
rendered policies, before applying) or "live" (the cluster's policies).
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import DataTable, Static
from textual.widgets.data_table import ColumnKey

from .pod_table import KeyedTable, Shown

ARROW = " -> "

# section key -> (order, title); rows are grouped by the probe's destination, else its source
SECTIONS: dict[str, tuple[int, str]] = {
    "to-vllm": (0, "Who can reach vLLM"),
    "to-epp": (1, "Who can reach the EPP"),
    "from-vllm": (2, "What vLLM can reach"),
    "from-epp": (3, "What the EPP can reach"),
    "other": (4, "Other paths"),
}


def _probe_ends(cfg: Any) -> dict[str, tuple[str, str]]:
    """probe key -> (source key, destination key) of the standard probes."""
    from ..cloud import netpol as calc

    return {p.key: (p.src, p.dst) for p in calc.standard_probes(cfg)}


def section_of(src: str, dst: str) -> str:
    if dst == "vllm":
        return "to-vllm"
    if dst == "epp":
        return "to-epp"
    if src == "vllm":
        return "from-vllm"
    if src == "epp":
        return "from-epp"
    return "other"


_SUFFIX = re.compile(r"^(.*?)(\s+\([^)]*\))?$")


def split_label(label: str) -> tuple[str, str, str]:
    """'EPP -> vLLM:8000 (metrics)' -> ('EPP', 'vLLM:8000', ' (metrics)')."""
    src, sep, rest = label.partition(ARROW)
    if not sep:
        return label, "", ""
    m = _SUFFIX.match(rest)
    dst, suffix = (m.group(1), m.group(2) or "") if m else (rest, "")
    return src, dst, suffix


def who_text(section: str, label: str, port: int, ports_in_section: int) -> str:
    """What a row says inside its section (the other end of the connection)."""
    src, dst, suffix = split_label(label)
    if not dst:
        return label.replace(ARROW, " → ")
    if section in ("to-vllm", "to-epp"):
        return f"{src} :{port}{suffix}" if ports_in_section > 1 else f"{src}{suffix}"
    if section in ("from-vllm", "from-epp"):
        return f"{dst}{suffix}"
    return label.replace(ARROW, " → ")


def section_title(section: str, ports: Sequence[int]) -> str:
    title = SECTIONS[section][1]
    if section in ("to-vllm", "to-epp") and len(set(ports)) == 1:
        title += f" :{ports[0]}"
    return title


def result_shown(row: Any) -> Shown:
    word = "allowed" if row.allowed else "denied"
    if row.ok:
        return f"✔ {word}", "$success" if row.allowed else "$text-muted"
    if row.required and not row.allowed:
        return f"✘ {word}", "bold $error"
    return f"⚠ {word}", "bold $warning"


def observed_shown(obs: Any) -> Shown:
    """The Observed cell: what a probe pod saw on the cluster, marked against the guide's intent."""
    if obs is None:
        return "", ""
    if obs.observed is None:
        return "? no result", "$warning"
    word = "connected" if obs.observed else "blocked"
    return (f"✔ {word}", "$success") if obs.ok else (f"✘ {word}", "bold $error")


def decided_by(row: Any) -> str:
    if str(getattr(row, "reason", "")).startswith("not enforced"):
        return "not enforced"
    return ", ".join(row.policies) if row.policies else "no policy (open)"


def fit_names(text: str, width: int) -> str:
    """'a, b, c' in `width` columns: as many names as fit, then how many more ('a, b +1'), never a
    name cut in the middle (the highlighted row's explanation lists them all)."""
    if width <= 0 or len(text) <= width:
        return text
    names = text.split(", ")
    for n in range(len(names) - 1, 0, -1):
        shown = ", ".join(names[:n]) + f" +{len(names) - n}"
        if len(shown) <= width:
            return shown
    return f"{names[0][:max(1, width - 4)]}… +{len(names) - 1}" if len(names) > 1 else text


def row_explanation(row: Any, observed: Any = None, decided: str = "") -> Content:
    """The highlighted row, in full: verdict, what the guide intends, who decided and why (`decided`:
    the deciding policies, when the table does not show them whole)."""
    text, style = result_shown(row)
    parts: list[Any] = [(row.label.replace(ARROW, " → "), "bold"), "  ", (text, style)]
    if row.required and not row.allowed:
        parts += [("  the deployment needs this path", "$error")]
    elif not row.ok:
        parts += [("  the guide intends: " + ("allowed" if row.expected else "denied"), "$warning")]
    if decided:
        parts += ["\n", ("Decided by: ", "$text-muted"), decided]
    parts += ["\n", (row.reason, "$text-muted")]
    if observed is not None:
        parts += ["\n", ("Observed: ", "$text-muted"), observed.text()]
    return Content.assemble(*parts)


def _reach_lines(rows: Sequence[Any], cfg: Any) -> list[tuple[str, str]]:
    """(label, names) for: who reaches vLLM, who reaches the EPP, what vLLM reaches (allowed rows)."""
    ends = _probe_ends(cfg)
    by_section: dict[str, list[Any]] = {}
    for r in rows:
        by_section.setdefault(section_of(*ends.get(r.key, ("", ""))), []).append(r)

    def names(section: str) -> str:
        members = by_section.get(section, [])
        n_ports = len({r.port for r in members})
        allowed = [who_text(section, r.label, r.port, n_ports) for r in members if r.allowed]
        return ", ".join(allowed) if allowed else "nobody" if section.startswith("to-") else "nothing"

    out = []
    for section, label in (("to-vllm", "vLLM :8000 is reachable from: "), ("to-epp", "the EPP from: "),
                           ("from-vllm", "vLLM can reach: ")):
        if by_section.get(section):
            out.append((label, names(section)))
    return out


def headline(report: Any, mode: str, cfg: Any) -> Content:
    """A few lines: does a needed path break; who reaches vLLM and the EPP, and what vLLM reaches
    (the isolation, or that there is none); paths not as the guide intends."""
    rows = list(report.rows)
    parts: list[Any] = []
    enforced = getattr(report, "enforced", None)
    if enforced is False:
        if mode == "preview":
            parts += [("⚠ Not enforced on this cluster: ", "bold $warning"),
                      ("applying stores these policies without isolating anything (the table shows what they "
                       "say, not what happens). ", "$warning")]
        else:
            parts += [("✘ Not isolated: ", "bold $error"),
                      ("this cluster does not enforce NetworkPolicies, so every pod can reach vLLM and the EPP "
                       "whatever the policies say.", "$error")]
            cluster = getattr(cfg, "cluster", "CLUSTER")
            parts += ["\n", ("• enable it here: ", "$text-muted"),
                      f"gcloud container clusters update {cluster} --update-addons=NetworkPolicy=ENABLED, then "
                      "--enable-network-policy", (" (recreates every node, TPU nodes included)", "$text-muted"),
                      "\n", ("• or a new cluster with ", "$text-muted"), "--enable-dataplane-v2",
                      (" (chosen at creation only)", "$text-muted")]
            return Content.assemble(*parts)
        parts += ["\n"]
    if report.broken:
        lead = "Applying these policies would break the deployment: " if mode == "preview" else \
            "The live policies break the deployment: "
        # the warnings without their reasons (the highlighted row explains)
        parts += [("✘ " + lead, "bold $error"),
                  ("; ".join(w.split(" (", 1)[0] for w in report.warnings()) + ".", "$error")]
    elif mode == "preview":
        parts += [("✔ Nothing the deployment needs would break", "bold $success"),
                  ": the gateway keeps reaching vLLM and the EPP."]
    elif not report.policies:
        parts += [("No NetworkPolicy selects these pods: ", "bold $warning"),
                  "every pod in the cluster can reach vLLM and the EPP."]
    elif mode != "preview" and getattr(report, "observed_gaps", None):
        parts += [("✘ Not isolated as intended: ", "bold $error"),
                  "probe pods on the cluster did not see what these policies say (below)."]
    else:
        by = getattr(report, "enforcement", "") if enforced else ""
        parts += [("✔ Isolation in place", "bold $success"), ": the gateway still reaches vLLM and the EPP."]
        if by:
            parts += [(f" {by}", "$text-muted")]
    if report.policies or mode == "preview":
        for label, names in _reach_lines(rows, cfg):
            parts += ["\n", (label, "$text-muted"), names]
    observed = list((getattr(report, "observed", None) or {}).values())
    if observed:
        wrong = [o for o in observed if not o.ok]
        if wrong:
            parts += ["\n", ("✘ Seen on the cluster: ", "bold $error"),
                      "; ".join(o.text() for o in wrong)]
        else:
            parts += ["\n", (f"✔ Seen on the cluster: {len(observed)}/{len(observed)} probe pods as intended",
                              "$success")]
    gaps = [r for r in report.gaps if not (r.required and not r.allowed)]
    if gaps and report.policies:
        parts += ["\n", (f"⚠ {len(gaps)} path{'s' if len(gaps) != 1 else ''} not as the guide intends: ",
                         "$warning"), ", ".join(r.label.replace(ARROW, " → ") for r in gaps)]
    return Content.assemble(*parts)


class ReachabilityTable(KeyedTable):
    """Rows keyed by probe key, section headers keyed 'section:<name>'."""

    COLUMNS = (
        ("who", "Connection", 31),
        ("result", "Result", 9),
        ("seen", "Observed", 11),
        ("by", "Decided by", 12),
    )
    FILL_COLUMN = "by"
    SORTED = True
    # below 70 cells (an 80-column terminal): the connection and its result whole, what the probe
    # pods saw as its mark; the highlighted row's explanation under the table says the rest
    NARROW_COLUMNS = (
        ("who", "Connection", 31),
        ("result", "Result", 9),
        ("mark", "Seen", 4),
    )
    NARROW_BELOW = 70

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.rows_by_key: dict[str, Any] = {}

    def sort_key(self, key: str, model: Mapping[str, Any]) -> Any:
        return (int(model.get("order", 0)), int(model.get("index", 0)))

    def shown_cells(self, key: str, model: Mapping[str, Any]) -> dict[str, Shown]:
        if key.startswith("section:"):
            return {"who": (str(model.get("who", "")), "bold $accent"), "result": ("", ""), "seen": ("", ""),
                    "by": ("", ""), "mark": ("", "")}
        row = self.rows_by_key.get(key)
        return {
            "who": (" " + str(model.get("who", "")), ""),
            "result": (str(model.get("result", "")), str(model.get("result_style", ""))),
            "seen": (str(model.get("seen", "")), str(model.get("seen_style", ""))),
            "by": (fit_names(str(model.get("by", "")), self._by_width()), "$text-muted"),
            "mark": (str(model.get("seen", ""))[:1], str(model.get("seen_style", ""))),
        } if row is not None else {c: ("", "") for c in self.all_column_keys}

    def decided_by_cut(self, key: str) -> bool:
        """The row's deciding policies are not all in the table (narrow, or names left out)."""
        model = self._model.get(key) or {}
        return "by" not in self.column_keys or self.shown_text(key, "by") != str(model.get("by", ""))

    def _by_width(self) -> int:
        column = self.columns.get(ColumnKey("by"))
        return int(column.width) if column is not None else 0

    def show(self, rows: Sequence[Any], cfg: Any, observed: Mapping[str, Any] | None = None) -> None:
        """Show `rows` (cloud.netpol.Row), with what probe pods `observed` (row key -> Observation)
        next to them; rows no longer there go, the others update in place."""
        observed = observed or {}
        ends = _probe_ends(cfg)
        grouped: dict[str, list[Any]] = {}
        for r in rows:
            src, dst = ends.get(r.key, ("", ""))
            grouped.setdefault(section_of(src, dst), []).append(r)
        keep: list[str] = []
        self.rows_by_key = {r.key: r for r in rows}
        with self.app.batch_update():
            for section, members in sorted(grouped.items(), key=lambda kv: SECTIONS[kv[0]][0]):
                order = SECTIONS[section][0]
                ports = [r.port for r in members]
                skey = f"section:{section}"
                keep.append(skey)
                self.upsert(skey, {"who": section_title(section, ports), "order": order, "index": -1})
                n_ports = len(set(ports))
                for i, r in enumerate(members):
                    text, style = result_shown(r)
                    seen, seen_style = observed_shown(observed.get(r.key))
                    keep.append(r.key)
                    self.upsert(r.key, {"who": who_text(section, r.label, r.port, n_ports), "result": text,
                                        "result_style": style, "seen": seen, "seen_style": seen_style,
                                        "by": decided_by(r), "order": order, "index": i,
                                        "allowed": r.allowed, "ok": r.ok})
            self.sync_keys(keep)
            self.resort()

    def highlighted_row(self) -> Any:
        key = self._cursor_key()
        return self.rows_by_key.get(key) if key else None


class ReachabilityPanel(Vertical):
    """Headline, table, and the highlighted row's explanation."""

    DEFAULT_CSS = """
    ReachabilityPanel {
        height: 1fr;
        .reach-headline { height: auto; margin: 0 1 0 0; }
        ReachabilityTable { height: 1fr; margin: 0 1 0 0; }
        .reach-explain { height: auto; max-height: 4; margin: 0 1 0 0; color: $text-muted; }
    }
    """

    def __init__(self, *, empty: str = "", id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.empty = empty
        self.report: Any = None
        self.mode = ""
        self.headline_text = empty

    def compose(self) -> ComposeResult:
        yield Static(Content.styled(self.empty, "$text-muted"), classes="reach-headline")
        yield ReachabilityTable()
        yield Static("", classes="reach-explain")

    @property
    def table(self) -> ReachabilityTable:
        return self.query_one(ReachabilityTable)

    def show(self, report: Any, cfg: Any, mode: str) -> None:
        """`report`: a steps.netpol.NetpolReport; `mode`: "preview" or "live"."""
        self.report, self.mode = report, mode
        content = headline(report, mode, cfg)
        self.headline_text = content.plain
        self.query_one(".reach-headline", Static).update(content)
        self.table.show(report.rows, cfg, getattr(report, "observed", None))
        self._explain()

    def show_message(self, text: str, style: str = "$text-muted") -> None:
        """No table to show (not connected, an error): say why."""
        self.headline_text = text
        self.query_one(".reach-headline", Static).update(Content.styled(text, style))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._explain()

    def on_resize(self) -> None:
        if self.report is not None:  # the table may show fewer columns now: the explanation says the rest
            self.call_after_refresh(self._explain)

    def _explain(self) -> None:
        row = self.table.highlighted_row()
        if row is None:
            row = next((r for r in (self.report.rows if self.report else []) if not r.ok), None)
        obs = (getattr(self.report, "observed", None) or {}).get(row.key) if row is not None else None
        decided = decided_by(row) if row is not None and self.table.decided_by_cut(row.key) else ""
        self.query_one(".reach-explain", Static).update(
            row_explanation(row, obs, decided) if row is not None else
            Content.styled("Move to a row (↑↓) to see which policies decide it and why." if self.report else "",
                           "$text-muted"))

    def result_of(self, key: str) -> str:
        """The result cell shown for a probe key ('✔ allowed', '✘ denied', ...)."""
        return self.table.shown_text(key, "result")


__all__ = ["ReachabilityTable", "ReachabilityPanel", "headline", "row_explanation", "split_label", "who_text",
           "section_of", "result_shown"]
