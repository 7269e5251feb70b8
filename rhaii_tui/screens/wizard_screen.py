"""The wizard's main screen: the sidebar and the page on show share one set of keys.

Textual looks up a key's binding along the focused widget's ancestors, so with focus in the
sidebar a page's own keys (r to refresh, A to apply, ...) would do nothing and the footer would not
show them. This screen adds the page on show to the chain, after the focused widget's own
ancestors (which still win: the sidebar keeps its arrows and Enter), before the screen and the app.
"""

from __future__ import annotations

from typing import Any

from textual.screen import Screen


class WizardScreen(Screen):
    """The default screen of RhaiiApp."""

    @property
    def _binding_chain(self) -> list[tuple[Any, Any]]:  # textual==8.2.8 (pinned) builds key lookup here
        chain = super()._binding_chain
        page = getattr(self.app, "current_page", None)
        if page is None or not page.is_mounted or page.screen is not self:
            return chain
        if any(node is page for node, _ in chain):  # focus is inside the page already
            return chain
        at = next((i for i, (node, _) in enumerate(chain) if node is self), len(chain))
        bindings = page._bindings.copy()
        keymap = self.app._keymap
        if keymap:
            bindings.apply_keymap(keymap)
        chain.insert(at, (page, bindings))
        return chain
