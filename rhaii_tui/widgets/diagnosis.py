"""DiagnosisPanel: why something is stuck, what shows it, what to do, the exact commands.

Shows `steps.diagnose.Diagnosis` objects (or anything with cause, title, evidence, fix, commands,
severity, pod): the title coloured by severity, the evidence as bullets (live: scheduler
messages, node counts, the last log lines), the fix, and the commands. Diagnoses of the same
cause and fix (e.g. three pods refused by Hugging Face) are grouped: the first in full, then
"also: <pods>". `c` copies the commands of everything shown.

`show(diagnoses)` re-renders only when the text changed.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import Static

SEVERITY_MARK: dict[str, tuple[str, str]] = {
    "error": ("✘", "bold $error"),
    "warning": ("⚠", "bold $warning"),
    "info": ("ℹ", "bold $accent"),
}


def _get(d: Any, name: str, default: Any = "") -> Any:
    if isinstance(d, Mapping):
        return d.get(name, default)
    return getattr(d, name, default)


def group_diagnoses(diagnoses: Sequence[Any]) -> list[tuple[Any, list[str]]]:
    """[(first diagnosis, [other pods with the same cause and fix])], errors first."""
    groups: dict[tuple[str, str], tuple[Any, list[str]]] = {}
    for d in diagnoses:
        key = (str(_get(d, "cause")), str(_get(d, "fix")))
        if key in groups:
            pod = str(_get(d, "pod") or "")
            if pod:
                groups[key][1].append(pod)
        else:
            groups[key] = (d, [])
    order = {"error": 0, "warning": 1, "info": 2}
    return sorted(groups.values(), key=lambda g: order.get(str(_get(g[0], "severity", "error")), 3))


def diagnosis_content(diagnoses: Sequence[Any], empty: str = "No problem detected.",
                      labels: Mapping[str, str] | None = None) -> Content:
    if not diagnoses:
        return Content.styled(empty, "$text-muted")
    labels = labels or {}
    parts: list[Any] = []
    for i, (d, others) in enumerate(group_diagnoses(diagnoses)):
        if i:
            parts.append("\n\n")
        glyph, style = SEVERITY_MARK.get(str(_get(d, "severity", "error")), SEVERITY_MARK["error"])
        parts += [(f"{glyph} ", style), (str(_get(d, "title")), style)]
        pod = str(_get(d, "pod") or "")
        if pod:
            who = [f"{labels.get(pod, '')} {pod}".strip()] + [f"{labels.get(p, '')} {p}".strip() for p in others]
            parts += ["\n", ("  pods: " if len(who) > 1 else "  pod: ", "$text-muted"), (", ".join(who), "")]
        for e in _get(d, "evidence", ()) or ():
            parts += ["\n", ("  • ", "$text-muted"), (str(e), "")]
        fix = str(_get(d, "fix") or "")
        if fix:
            parts += ["\n", ("  Fix: ", "bold $warning"), (fix, "")]
        for c in _get(d, "commands", ()) or ():
            parts += ["\n", ("  $ ", "bold $accent"), (str(c), "")]
    return Content.assemble(*parts)


class DiagnosisPanel(VerticalScroll):
    """Shows diagnoses; `c` copies their commands."""

    ALLOW_MAXIMIZE = True  # the pages' zoom (f) takes the whole pane, not just the part in focus

    DEFAULT_CSS = """
    DiagnosisPanel {
        height: 1fr;
        scrollbar-size-vertical: 1;
        .diagnosis-text { height: auto; }
    }
    """

    BINDINGS = [Binding("c", "copy_commands", "Copy commands", tooltip="Copy the commands shown here")]

    def __init__(self, *, empty: str = "No problem detected.", id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.empty = empty
        self._plain: str | None = None
        self.diagnoses: list[Any] = []

    def compose(self):
        yield Static(Content.styled(self.empty, "$text-muted"), classes="diagnosis-text")

    def show(self, diagnoses: Sequence[Any], labels: Mapping[str, str] | None = None) -> bool:
        """Render; True when the text changed."""
        content = diagnosis_content(diagnoses, self.empty, labels)
        self.diagnoses = list(diagnoses)
        if content.plain == self._plain:
            return False
        self._plain = content.plain
        self.query_one(".diagnosis-text", Static).update(content)
        return True

    @property
    def text(self) -> str:
        return self._plain if self._plain is not None else self.empty

    def action_copy_commands(self) -> None:
        cmds: list[str] = []
        for d, _others in group_diagnoses(self.diagnoses):
            for c in _get(d, "commands", ()) or ():
                if c not in cmds:
                    cmds.append(str(c))
        if cmds:
            from .commands_panel import send_to_clipboard

            send_to_clipboard(self, "\n".join(cmds) + "\n", f"{len(cmds)} command{'s' if len(cmds) != 1 else ''}")


__all__ = ["DiagnosisPanel", "diagnosis_content", "group_diagnoses"]
