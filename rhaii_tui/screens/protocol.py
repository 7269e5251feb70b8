"""What a wizard page needs from the app it lives in: a small protocol, so that the pages do not
import `app.py` (which imports the pages). `RhaiiApp` fits it; a test app may too."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from ..config import DeployConfig
from ..widgets.marks import StepStateLike


@runtime_checkable
class Wizard(Protocol):
    cfg: DeployConfig
    profile: Any
    state_store: Any
    current_step: int
    step_states: dict[int, StepStateLike]

    def step_context(self) -> Any:
        """The shared steps.context.StepContext, or None while not connected."""

    def set_step_state(self, number: int, state: StepStateLike) -> None:
        """Record a step's state (sidebar and page); safe from threads."""

    def save_config(self, cfg: DeployConfig) -> None:
        """Make `cfg` the wizard's config and remember it."""

    def goto_step(self, number: int) -> None:
        """Show a page."""

    def page_widget(self, number: int) -> Any:
        """A mounted page, or None."""
