"""ThroughputChart: the live chart of a throughput run — requests/s (left axis) and latency P50 and
P99 in ms (right axis), one point per second (the engine's `ProgressTick`s).

    chart.reset("closed loop, 10 in flight")
    chart.add_tick(tick)            # per second, from the load generator
    chart.set_ticks(result.buckets) # the whole run at the end

Built on textual-plotext's PlotextPlot; replotting happens at most once per tick (one a second).
"""

from __future__ import annotations

from typing import Any, Iterable

from textual_plotext import PlotextPlot


LEGEND = "seconds · cyan: req/s (left axis) · green: P50 ms · orange: P99 ms (right axis)"


class ThroughputChart(PlotextPlot):
    """Requests/s and latency P50/P99 over time."""

    DEFAULT_CSS = """
    ThroughputChart {
        height: 12;
        min-height: 8;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.title = ""
        self.ticks: list[Any] = []

    def on_mount(self) -> None:  # Textual calls each class's on_mount: no super() here
        self.replot()

    # API ---------------------------------------------------------------------------------------
    def reset(self, title: str = "") -> None:
        self.title = title
        self.ticks = []
        self.replot()

    def add_tick(self, tick: Any) -> None:
        self.ticks.append(tick)
        self.replot()

    def set_ticks(self, ticks: Iterable[Any], title: str | None = None) -> None:
        if title is not None:
            self.title = title
        self.ticks = list(ticks)
        self.replot()

    def series(self) -> dict[str, list[tuple[float, float]]]:
        """The plotted points: rps, p50, p99 (x = seconds since the start)."""
        out: dict[str, list[tuple[float, float]]] = {"rps": [], "p50": [], "p99": []}
        for t in self.ticks:
            x = float(t.t_s)
            out["rps"].append((x, float(t.rps)))
            if t.p50_ms is not None:
                out["p50"].append((x, float(t.p50_ms)))
            if t.p99_ms is not None:
                out["p99"].append((x, float(t.p99_ms)))
        return out

    # plumbing ------------------------------------------------------------------------------------
    def replot(self) -> None:
        plt = self.plt
        plt.clear_figure()
        s = self.series()
        title = self.title or "throughput run"
        if not self.ticks:
            title += " — waiting for the first second"
        plt.title(title)
        # The legend goes under the axis, in words and colours: plotext draws its own legend box over
        # the top-left of the plot, on the lines.
        plt.xlabel(LEGEND)
        if s["rps"]:
            xs, ys = zip(*s["rps"])
            plt.plot(list(xs), list(ys), marker="braille", color="cyan", yside="left")
        if s["p50"]:
            xs, ys = zip(*s["p50"])
            plt.plot(list(xs), list(ys), marker="braille", color="green", yside="right")
        if s["p99"]:
            xs, ys = zip(*s["p99"])
            plt.plot(list(xs), list(ys), marker="braille", color="orange", yside="right")
        if s["rps"]:
            top = max(y for _x, y in s["rps"])
            plt.ylim(0, max(1.0, top * 1.15), yside="left")
        lat = [y for k in ("p50", "p99") for _x, y in s[k]]
        if lat:
            plt.ylim(0, max(1.0, max(lat) * 1.15), yside="right")
        self.refresh()


__all__ = ["ThroughputChart"]
