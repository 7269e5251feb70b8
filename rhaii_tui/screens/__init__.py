"""Step screens: the registry that maps a page number to its StepScreen class.

Page numbers: 0 Configure, 1-11 the guide's steps, 12 Operate (see `pages.py`).

A step screen registers itself with a decorator::

    from rhaii_tui.screens import register_step_screen
    from rhaii_tui.screens.base import StepScreen

    @register_step_screen(2)
    class ClusterScreen(StepScreen):
        def compose_body(self):
            yield ...

Modules are found by convention and imported only when their page is first opened (so startup
stays instant): page n lives in `rhaii_tui/screens/<module>.py` where <module> is `configure`
for 0, the guide step's key with '-' -> '_' for 1-11 (`preflight`, `cluster`, `secrets`,
`operators`, `deploy`, `epp_sidecar`, `envoyfilters`, `netpol`, `verify`, `performance`,
`identity`) and `operate` for 12. A class registered from any other imported module wins too.
Pages without a registered class get the generic `StepScreen` (purpose, success criteria,
live state, commands).

Screen modules must not import cloud client libraries at module level: import them inside workers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Callable, TypeVar

from .pages import BY_NUMBER, CONFIGURE, OPERATE, PAGES, Page, page

if TYPE_CHECKING:
    from .base import StepScreen

__all__ = [
    "CONFIGURE", "OPERATE", "PAGES", "Page", "page",
    "register_step_screen", "step_screen_for", "module_name_for",
]

_REGISTRY: dict[int, type["StepScreen"]] = {}
_TRIED: set[int] = set()

S = TypeVar("S", bound="type[StepScreen]")


def register_step_screen(number: int) -> Callable[[S], S]:
    """Class decorator: use `cls` for page `number` (0 Configure, 1-11 steps, 12 Operate)."""
    if number not in BY_NUMBER:
        raise ValueError(f"no wizard page {number}; pages are {min(BY_NUMBER)}-{max(BY_NUMBER)}")

    def deco(cls: S) -> S:
        from .base import StepScreen

        if not (isinstance(cls, type) and issubclass(cls, StepScreen)):
            raise TypeError(f"{cls!r} must subclass rhaii_tui.screens.base.StepScreen")
        _REGISTRY[number] = cls
        return cls

    return deco


def module_name_for(number: int) -> str:
    if number == CONFIGURE:
        return "configure"
    if number == OPERATE:
        return "operate"
    step = page(number).step
    assert step is not None
    return step.key.replace("-", "_")


def step_screen_for(number: int) -> "type[StepScreen]":
    """The StepScreen class for page `number`: the registered one, else the generic StepScreen."""
    if number not in BY_NUMBER:
        raise KeyError(f"no wizard page {number}")
    if number not in _REGISTRY and number not in _TRIED:
        _TRIED.add(number)
        name = f"{__name__}.{module_name_for(number)}"
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
    cls = _REGISTRY.get(number)
    if cls is None:
        from .base import StepScreen

        cls = StepScreen
    return cls
