"""The step 4/5 widgets on their own (no cloud): the log pane's batching, bounds, follow mode,
filter and pickers; the keyed pod table's in-place updates; the milestone checklist."""

from __future__ import annotations

import threading

import pytest
from textual.app import App, ComposeResult
from textual.geometry import Region
from textual.widgets import Log

from rhaii_tui.steps.podlife import MilestoneTracker, PodTable, RowDiff
from rhaii_tui.widgets.log_pane import ALL, LogPane
from rhaii_tui.widgets.milestones import checklist_content
from rhaii_tui.widgets.pod_table import PodTableWidget

from test_screens_4_5_fixtures import LOG_LINES, T0, deploy_pods, epp_pod


class PaneApp(App):
    def __init__(self, **pane_kw) -> None:
        super().__init__()
        self.pane_kw = pane_kw
        self.animation_level = "none"  # scrolls jump (Pilot waits for animations after each key)

    def compose(self) -> ComposeResult:
        yield LogPane(id="pane", **self.pane_kw)


async def drained(pilot, pane: LogPane, received: int) -> None:
    for _ in range(200):
        if pane.received >= received:
            break
        await pilot.pause(0.02)
    await pilot.pause(0.15)  # one more drain tick (15 Hz)


@pytest.mark.asyncio
async def test_log_pane_takes_three_threads_in_batches_and_keeps_memory_bounded():
    app = PaneApp(max_lines=500, ring_lines=2_000)
    async with app.run_test(size=(100, 30)) as pilot:
        pane = app.query_one(LogPane)
        pane.set_sources([("pod-a", "r1"), ("pod-b", "r2"), ("pod-c", "r3")])

        def produce(pod: str) -> None:
            for batch in range(30):
                pane.ingest(pod, "main", [f"{pod} line {batch * 100 + i}" for i in range(100)])

        threads = [threading.Thread(target=produce, args=(p,)) for p in ("pod-a", "pod-b", "pod-c")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        await drained(pilot, pane, 9_000)
        log = pane.query_one(Log)
        assert pane.received == 9_000 and pane.dropped == 0
        assert log.line_count == 500  # the Log keeps max_lines
        assert pane._ring_count == 2_000  # the ring keeps ring_lines, no more
        shown = pane.shown_lines
        assert all(line.startswith(("r1 main│ pod-a", "r2 main│ pod-b", "r3 main│ pod-c")) for line in shown)
        assert shown[-1].endswith(" line 2999")
        for pod in ("pod-a", "pod-b", "pod-c"):  # each stream in order, no line twice
            numbers = [int(line.split(" line ")[1]) for line in shown if f"{pod} " in line]
            assert numbers == sorted(set(numbers))
        assert pane.following and "● following · 9,000 lines" in pane.status_text()


@pytest.mark.asyncio
async def test_log_pane_holds_still_when_scrolled_up_and_follows_again_at_the_end():
    app = PaneApp()
    async with app.run_test(size=(100, 20)) as pilot:
        pane = app.query_one(LogPane)
        pane.ingest("installer", "", [f"line {i}" for i in range(200)])
        await drained(pilot, pane, 200)
        log = pane.query_one(Log)
        assert log.is_vertical_scroll_end and log.lines[-1] == "line 199"
        log.focus()
        await pilot.press("home")  # the user scrolls up
        await pilot.pause(0.1)
        pane.ingest("installer", "", [f"new {i}" for i in range(50)])
        await drained(pilot, pane, 250)
        assert not pane.following
        assert log.scroll_y == 0 and log.lines[-1] == "line 199"  # the view did not move
        assert "paused: 50 new lines (End to follow)" in pane.status_text()
        await pilot.press("end")
        await pilot.pause(0.2)
        assert pane.following and log.lines[-1] == "new 49" and log.is_vertical_scroll_end


@pytest.mark.asyncio
async def test_log_pane_filter_and_pod_and_container_pickers():
    app = PaneApp()
    async with app.run_test(size=(100, 30)) as pilot:
        pane = app.query_one(LogPane)
        pane.set_sources([("pod-a", "r1"), ("pod-b", "r2")])
        for pod in ("pod-a", "pod-b"):
            pane.ingest(pod, "storage-initializer", LOG_LINES["storage-initializer"])
            pane.ingest(pod, "main", LOG_LINES["main"])
        await drained(pilot, pane, 12)
        assert len(pane.shown_lines) == 12 and pane.shown_lines[0].startswith("r1 init│ ")
        pane.query_one(".log-filter").value = "kv cache"  # lower case: case-insensitive
        await pilot.pause(0.4)
        assert pane.shown_lines == [f"{r} main│ {LOG_LINES['main'][2]}" for r in ("r1", "r2")]
        pane.query_one(".log-filter").value = ""
        pane.select(pod="pod-b", container="main")
        await pilot.pause(0.4)
        assert pane.shown_lines == LOG_LINES["main"]  # one pod, one container: no prefix
        pane.select(pod=ALL)
        await pilot.pause(0.2)
        assert pane.shown_lines == [f"{r}│ {line}" for r in ("r1", "r2") for line in LOG_LINES["main"]]


@pytest.mark.asyncio
async def test_lines_that_came_before_the_pods_had_replica_labels_get_them_once_known():
    """Quiet pods: every line may arrive before the page knows which replica a pod is; the lines
    already on screen must still say whose they are, not wait for a next line that never comes."""
    app = PaneApp()
    async with app.run_test(size=(100, 30)) as pilot:
        pane = app.query_one(LogPane)
        pane.ingest("pod-a", "storage-initializer", LOG_LINES["storage-initializer"])
        pane.ingest("pod-b", "main", LOG_LINES["main"])
        await drained(pilot, pane, len(LOG_LINES["storage-initializer"]) + len(LOG_LINES["main"]))
        assert pane.shown_lines[0] == "init│ " + LOG_LINES["storage-initializer"][0]  # no label known yet
        pane.set_sources([("pod-a", "r1"), ("pod-b", "r2")])
        await pilot.pause(0.3)
        assert pane.shown_lines == ([f"r1 init│ {line}" for line in LOG_LINES["storage-initializer"]]
                                    + [f"r2 main│ {line}" for line in LOG_LINES["main"]])


@pytest.mark.asyncio
async def test_a_hidden_log_pane_fills_its_ring_and_catches_up_when_shown():
    app = PaneApp()
    async with app.run_test(size=(100, 20)) as pilot:
        pane = app.query_one(LogPane)
        pane.display = False
        await pilot.pause(0.1)
        pane.ingest("installer", "", [f"line {i}" for i in range(30)])
        await drained(pilot, pane, 30)
        assert pane.shown_lines == []  # nothing written while hidden
        pane.display = True
        await pilot.pause(0.3)
        assert pane.shown_lines[-1] == "line 29" and len(pane.shown_lines) == 30


def painted(widget) -> list[str]:
    """The widget's lines as the compositor gets them (the render path that drops stale cells)."""
    return [strip.text for strip in widget.render_lines(Region(0, 0, widget.size.width, widget.size.height))]


class TableApp(App):
    def compose(self) -> ComposeResult:
        yield PodTableWidget(id="pods")


@pytest.mark.asyncio
async def test_pod_table_updates_only_changed_cells_and_the_cursor_stays_on_its_pod():
    app = TableApp()
    async with app.run_test(size=(160, 20)) as pilot:
        widget = app.query_one(PodTableWidget)
        table = PodTable(clock=lambda: T0)
        diffs = table.resync(deploy_pods())
        keys = table.keys()
        for label, key in zip(("r2", "r3", "r4"), keys):
            widget.labels[key] = label
        widget.apply_diffs(diffs)
        await pilot.pause()
        assert widget.row_keys() == keys and widget.rows_added == 3
        widget.focus()
        widget.move_cursor(row=1)  # on r3
        await pilot.pause()
        assert "Running 0/1" in painted(widget)[2]
        before = widget.cell_updates
        # one pod becomes ready: only its changed cells are updated, and the screen shows it
        widget.apply_diffs([RowDiff("update", keys[1], {"stage": "Running 1/1", "ready": "1/1", "in_stage": "-"})])
        assert widget.cell_updates - before == 3 and widget.rows_added == 3
        assert widget.shown_text(keys[1], "stage") == "Running 1/1"
        await pilot.pause()
        lines = painted(widget)
        assert "r3" in lines[2] and "Running 1/1" in lines[2] and "Running 0/1" not in "".join(lines)
        # a new pod r1 sorts first; the EPP row last; the cursor stays on r3's pod
        epp = PodTable(clock=lambda: T0).resync([epp_pod()])
        new = RowDiff("add", "rhaii-inference/new-pod", {"name": "new-pod", "stage": "Pending", "ready": "0/1",
                                                         "restarts": "0", "node": "-", "in_stage": "5s",
                                                         "expected": "1-5 min", "severity": "ok", "milestone": ""})
        widget.labels["rhaii-inference/new-pod"] = "r1"
        widget.labels[epp[0].key] = "EPP"
        widget.apply_diffs([new] + epp)
        await pilot.pause()
        assert [widget.shown_text(k, "label") for k in widget.row_keys()] == ["r1", "r2", "r3", "r4", "EPP"]
        assert widget.row_keys()[widget.cursor_row] == keys[1]
        # a removed pod's row goes; nothing else moves
        widget.apply_diffs([RowDiff("remove", keys[0])])
        assert keys[0] not in widget.row_keys() and len(widget.row_keys()) == 4
        assert widget.row_keys()[widget.cursor_row] == keys[1]


def test_milestone_checklist_shows_times_durations_and_the_kv_cache():
    mt = MilestoneTracker(start=T0, time_scale=1.0)
    mt.feed(LOG_LINES["storage-initializer"][1], ts=T0 + 45)
    for i, line in enumerate(LOG_LINES["main"]):
        mt.feed(line, ts=T0 + 60 + 10 * i)
    text = checklist_content([("r1", "pod-a", mt)], now=T0 + 200).plain
    assert "✔ model downloaded" in text and "+45s" in text
    assert "✔ weights loaded (11.84 s)" in text and "3,071,232 tokens (TPU)" in text
    assert "… XLA compilation done   compiling for 1m50s" in text  # compile started at +90 s
    assert "○" not in text  # every other milestone reached
