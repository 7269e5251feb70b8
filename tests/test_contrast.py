"""Text that carries information is readable: table cells meet WCAG AA contrast (4.5:1) on the
default dark theme and on the light theme (a muted cell once came out black on dark grey)."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult

from rhaii_tui.widgets.pod_table import PodTableWidget


def _lum(c) -> float:
    def ch(v: int) -> float:
        x = v / 255
        return x / 12.92 if x <= 0.03928 else ((x + 0.055) / 1.055) ** 2.4
    return 0.2126 * ch(c.red) + 0.7152 * ch(c.green) + 0.0722 * ch(c.blue)


def _ratio(a, b) -> float:
    la, lb = _lum(a), _lum(b)
    return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)


class TableApp(App):
    def compose(self) -> ComposeResult:
        yield PodTableWidget(id="pods")


@pytest.mark.asyncio
@pytest.mark.parametrize("theme", ["textual-dark", "textual-light"])
async def test_every_pod_table_cell_reads_at_4_5_to_1(theme):
    app = TableApp()
    async with app.run_test(size=(160, 12)) as pilot:
        app.theme = theme
        table = app.query_one(PodTableWidget)
        for i in range(3):
            table.upsert(f"ns/pod-{i}", {"name": f"pod-{i}", "stage": "Init:0/1", "ready": "0/1", "restarts": "0",
                                         "in_stage": "40s", "expected": "30-60s", "age": "15m",
                                         "node": "gke-n-abcd", "milestone": "weights loaded", "severity": "ok"})
        table.move_cursor(row=0)
        await pilot.pause()
        worst = []
        for y in range(2, 4):  # rows below the cursor row
            for seg in table.render_line(y):
                if not seg.text.strip() or seg.style is None or seg.style.color is None:
                    continue
                fg, bg = seg.style.color, seg.style.bgcolor
                if bg is None:
                    continue
                r = _ratio(fg.get_truecolor(), bg.get_truecolor())
                worst.append((round(r, 2), seg.text.strip()))
        assert worst, "no cell text rendered"
        low = [w for w in worst if w[0] < 4.5]
        assert not low, low
