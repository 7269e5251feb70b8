"""TranscriptPanel: every change the wizard made to the target, live, copyable.

Loads the target's transcript (rhaii_tui/transcript.py) when mounted and appends each new entry as the
recorder makes it (the recorder calls back from the worker thread that made the change; the entry is
handed to the UI thread). Copy sends the equivalent commands to the clipboard.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Log

from ..transcript import add_listener, format_entry, remove_listener
from .commands_panel import send_to_clipboard


class TranscriptPanel(Vertical):
    DEFAULT_CSS = """
    TranscriptPanel { height: auto; }
    TranscriptPanel Log { height: 10; }
    TranscriptPanel .transcript-row { height: auto; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.entries: list[dict[str, Any]] = []
        self._target = ""

    def compose(self) -> ComposeResult:
        with Horizontal(classes="transcript-row"):
            yield Button("Copy commands", id="transcript-copy", compact=True)
            yield Button("Copy transcript", id="transcript-copy-all", compact=True)
        yield Log(id="transcript-log", max_lines=2000, auto_scroll=True)

    def on_mount(self) -> None:
        add_listener(self._heard)
        self.reload()

    def on_unmount(self) -> None:
        remove_listener(self._heard)

    def reload(self) -> None:
        """Show the target's transcript from its file."""
        getter = getattr(self.app, "step_context", None)
        ctx = getter() if getter is not None else None
        log = self.query_one(Log)
        log.clear()
        self.entries = []
        if ctx is None:
            return
        rec = ctx.transcript
        self._target = rec.target
        for e in rec.entries():
            self._show(e)

    def _heard(self, entry: dict[str, Any]) -> None:  # any thread
        try:
            self.app.call_from_thread(self._add, entry)
        except RuntimeError:  # already on the UI thread
            self._add(entry)
        except Exception:  # noqa: BLE001 - the app is closing
            pass

    def _add(self, entry: dict[str, Any]) -> None:
        if self._target and entry.get("target") and entry.get("target") != self._target:
            return
        self._show(entry)

    def _show(self, entry: dict[str, Any]) -> None:
        self.entries.append(entry)
        self.query_one(Log).write_line(format_entry(entry))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "transcript-copy":
            event.stop()
            cmds = [str(e.get("command") or "") for e in self.entries if e.get("command")]
            if not cmds:
                self.notify("No change recorded yet.", markup=False)
                return
            send_to_clipboard(self, "\n".join(cmds) + "\n", f"{len(cmds)} command(s) from the transcript")
        elif event.button.id == "transcript-copy-all":
            event.stop()
            if not self.entries:
                self.notify("No change recorded yet.", markup=False)
                return
            send_to_clipboard(self, "\n".join(format_entry(e) for e in self.entries) + "\n",
                              f"{len(self.entries)} transcript entries")
