"""StepList: the wizard's sidebar. Configure, the eleven guide steps, Operate; a state mark each.

Keyboard (up/down/home/end, enter) and mouse (click) both choose a page; the list posts
`StepList.Chosen(number)`, the app navigates and sets `current` back.
"""

from __future__ import annotations

from typing import Iterable

from textual.binding import Binding
from textual.content import Content
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from ..screens.pages import CONFIGURE, OPERATE, PAGES, Page
from .marks import StepStateLike, mark, status_of


class StepList(OptionList):
    """The step sidebar."""

    DEFAULT_CSS = """
    StepList {
        height: 1fr;
        max-height: 100%;
        border: none;
        padding: 0;
        background: $panel;
        text-wrap: nowrap;
        text-overflow: ellipsis;
        &:focus { border: none; }
        & > .option-list--option { padding: 0 0 0 1; }
    }
    """

    BINDINGS = [
        Binding("space", "select", "Open", show=False),
    ]

    current: reactive[int] = reactive(CONFIGURE, init=False)
    """The page on show (drawn bold, and kept highlighted when the app navigates)."""

    class Chosen(Message):
        """The user chose a page (enter or click)."""

        def __init__(self, number: int) -> None:
            super().__init__()
            self.number = number

    def __init__(self, pages: Iterable[Page] = PAGES, *, current: int = CONFIGURE,
                 states: dict[int, StepStateLike] | None = None, id: str | None = None) -> None:
        self._pages = {p.number: p for p in pages}
        self._states: dict[int, StepStateLike | None] = dict(states or {})
        self._rendered_width = 0
        super().__init__(id=id)
        self.set_reactive(StepList.current, current)
        options: list[Option | None] = []
        for p in self._pages.values():
            options.append(Option(self._prompt(p), id=str(p.number)))
            if p.number in (CONFIGURE, OPERATE - 1):
                options.append(None)  # a rule under Configure and under the last step
        self.add_options(options)
        self.highlighted = self.get_option_index(str(current))

    # rendering -------------------------------------------------------------------------------
    def _prompt(self, p: Page) -> Content:
        status = status_of(self._states.get(p.number))
        is_current = p.number == self.current
        title_style = "bold" if is_current else ""
        number = f"{p.number:>2} " if p.is_step else "   "
        title = getattr(p, "short", p.title)
        suffix = " (optional)" if p.optional else ""
        # fit the line to the width, keeping the "optional" mark visible
        room = self._text_width() - 3 - len(number)  # mark, space ... one cell of margin
        if room > 0 and len(title) + len(suffix) > room:
            title = getattr(p, "tiny", title)
        if room > 0 and len(title) + len(suffix) > room:
            if suffix:
                suffix = " (opt.)"
            if len(title) + len(suffix) > room:
                title = title[: max(1, room - len(suffix) - 1)].rstrip() + "…"
        parts: list[str | tuple[str, str] | Content] = [
            mark(status), " ", (number, "$text-muted"), (title, title_style)]
        if suffix:
            parts.append((suffix, "italic $text-muted"))
        return Content.assemble(*parts)

    def _text_width(self) -> int:
        """Cells available for an option's text (0 before the first layout)."""
        if not self.is_mounted:
            return 0
        padding = self.get_component_styles("option-list--option").padding
        return self.scrollable_content_region.width - padding.width

    def on_resize(self) -> None:
        width = self._text_width()
        if width != self._rendered_width:  # re-fit the lines to the new width
            self._rendered_width = width
            for number in self._pages:
                self._refresh_page(number)

    def _refresh_page(self, number: int) -> None:
        p = self._pages.get(number)
        if p is not None:
            prompt = self._prompt(p)
            old = self.get_option(str(number)).prompt
            # unchanged lines keep their render cache (Content's == compares the text only)
            if not (isinstance(old, Content) and old.plain == prompt.plain and old.spans == prompt.spans):
                self.replace_option_prompt(str(number), prompt)

    # API -------------------------------------------------------------------------------------
    def set_state(self, number: int, state: StepStateLike | None) -> None:
        self._states[number] = state
        self._refresh_page(number)

    def status(self, number: int) -> str:
        return status_of(self._states.get(number))

    def prompt_text(self, number: int) -> str:
        """The plain text of a page's line (for tests and screen readers)."""
        return self._prompt(self._pages[number]).plain

    def watch_current(self, old: int, new: int) -> None:
        self._refresh_page(old)
        self._refresh_page(new)
        self.highlighted = self.get_option_index(str(new))

    def _on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id is not None:
            self.post_message(self.Chosen(int(event.option.id)))
