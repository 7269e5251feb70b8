"""CommandsPanel: the equivalent gcloud/kubectl commands for the current config, copyable.

Enter or a click on a command copies it (OSC 52 via App.copy_to_clipboard); `c` copies the
highlighted one, `a` (or the "Copy all" button) copies them all, one per line.
Commands are shown as plain text (never parsed as markup) and hold no secrets: they are built
from the deploy config only.
"""

from __future__ import annotations

from typing import Sequence

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Button, Label, OptionList
from textual.widgets.option_list import Option


class CommandList(OptionList):
    """The commands, one option each (wrapped, so every command can be read in full)."""

    DEFAULT_CSS = """
    CommandList {
        height: auto;
        max-height: 100%;
        border: none;
        padding: 0;
        background: $surface;
        &:focus { border: none; }
        & > .option-list--option { padding: 0 0 0 0; }
        & > .option-list--option-highlighted { background: transparent; text-style: none; }
        &:focus > .option-list--option-highlighted {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
        }
    }
    """


def send_to_clipboard(node: Widget, text: str, what: str) -> None:
    """Send `text` to the clipboard (OSC 52: the terminal may ignore it, and nothing tells us) and,
    where the app keeps a file for it, write it there too and say where."""
    node.app.copy_to_clipboard(text)
    saver = getattr(node.app, "save_copied", None)
    path = saver(text) if saver is not None else None
    if path:
        node.notify(f"{what}\nAlso written to {path} (for terminals without clipboard access).",
                    title="Sent to the clipboard", timeout=6, markup=False)
    else:
        node.notify(what, title="Sent to the clipboard", timeout=3, markup=False)


class CommandsPanel(Vertical):
    """Equivalent commands for a step. Set `commands` to update."""

    DEFAULT_CSS = """
    CommandsPanel {
        height: auto;
        border-top: solid $primary 50%;
        padding: 0 1;
        #commands-head { height: 1; }
        #commands-title { width: 1fr; color: $text-muted; text-style: bold; }
        #copy-all { min-width: 10; }
        CommandList { max-height: 30vh; }
    }
    """

    BINDINGS = [
        Binding("c", "copy_highlighted", "Copy", tooltip="Copy the highlighted command"),
        Binding("a", "copy_all", "Copy all", tooltip="Copy every command, one per line"),
    ]

    commands: reactive[tuple[str, ...]] = reactive((), always_update=True, init=False)

    class Copied(Message):
        """Text was copied to the clipboard."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(self, commands: Sequence[str] = (), *, title: str = "Equivalent commands",
                 id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._title = title
        self.set_reactive(CommandsPanel.commands, tuple(commands))

    def compose(self) -> ComposeResult:
        with Horizontal(id="commands-head"):
            yield Label(self._title, id="commands-title")
            yield Button("Copy all", id="copy-all", compact=True, tooltip="Copy every command (a)")
        yield CommandList(*self._options(self.commands), id="command-list")

    @staticmethod
    def _options(commands: Sequence[str]) -> list[Option]:
        return [Option(Content.assemble(("$ ", "bold $accent"), Content(cmd)), id=str(i))
                for i, cmd in enumerate(commands)]

    def watch_commands(self, commands: tuple[str, ...]) -> None:
        command_list = self.query_one(CommandList)
        highlighted = command_list.highlighted
        command_list.set_options(self._options(commands))
        if highlighted is not None and commands:
            command_list.highlighted = min(highlighted, len(commands) - 1)

    # copying -----------------------------------------------------------------------------------
    def copy(self, text: str, what: str) -> None:
        send_to_clipboard(self, text, what)
        self.post_message(self.Copied(text))

    def action_copy_all(self) -> None:
        if self.commands:
            n = len(self.commands)
            self.copy("\n".join(self.commands) + "\n", f"{n} command{'s' if n != 1 else ''}")

    def action_copy_highlighted(self) -> None:
        index = self.query_one(CommandList).highlighted
        if index is not None and index < len(self.commands):
            self._copy_index(index)

    def _copy_index(self, index: int) -> None:
        cmd = self.commands[index]
        self.copy(cmd, cmd if len(cmd) <= 60 else cmd[:57] + "...")

    @on(OptionList.OptionSelected, "#command-list")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self._copy_index(event.option_index)

    @on(Button.Pressed, "#copy-all")
    def _copy_all_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_copy_all()
