"""The wizard's dialogs: a ModalScreen that still answers `?` with the help of the page beneath.

Textual stops looking for bindings at the top modal screen, so the app's non-priority keys do
nothing while a dialog is open. ctrl+q and F1 are priority bindings of the app (they work
everywhere); `?` cannot be one, because a text field types it, so each dialog carries it.
"""

from __future__ import annotations

from textual.binding import Binding
from textual.screen import ModalScreen, ScreenResultType


class WizardModal(ModalScreen[ScreenResultType]):
    """A dialog of the wizard: `?` opens the help of the page on show (a focused field still types it)."""

    BINDINGS = [Binding("question_mark", "app.help", "Help", key_display="?", show=False)]
