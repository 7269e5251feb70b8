"""Quit and help work from everywhere, and the footer shows only what the keys will do.

ctrl+q quits from every dialog (the start-up summary, Help, the type-the-name confirmation with its
field focused, the command palette); F1 and `?` open help on dialogs; while a text field has focus
the footer does not offer `?` (the field would type it)."""

from __future__ import annotations

import pytest
from textual.command import CommandPalette
from textual.widgets import Footer, Input

from rhaii_tui.app import RhaiiApp
from rhaii_tui.config import DeployConfig
from rhaii_tui.screens.help import HelpScreen
from rhaii_tui.screens.pages import page
from rhaii_tui.screens.resume import ResumeScreen
from rhaii_tui.widgets.confirm_cost import ConfirmCost

from pilothelpers import until

SIZE = (120, 40)


def make_app(step: int = 2) -> RhaiiApp:
    cfg = DeployConfig(project="demo-project-01")
    cfg.sources = {name: "default" for name in cfg.to_dict()}
    return RhaiiApp(cfg, start_step=step)


def footer_keys(app: RhaiiApp) -> list[str]:
    return [str(k.key_display or k.key) for k in app.query_one(Footer).query("FooterKey")]


async def _quits_from(dialog_factory) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await app.start_page_ready.wait()
        dialog = dialog_factory()
        if dialog is None:
            await pilot.press("ctrl+p")
            await until(pilot, lambda: isinstance(app.screen, CommandPalette) and app.screen.is_mounted, what="the command palette")
        else:
            app.push_screen(dialog)
            await until(pilot, lambda: app.screen is dialog and dialog.is_mounted, what="the dialog")
        await pilot.press("ctrl+q")
        await until(pilot, lambda: app._exit, what="the app to quit")


@pytest.mark.asyncio
@pytest.mark.parametrize("which", ["help", "confirm", "resume", "palette"])
async def test_ctrl_q_quits_from_every_dialog(which):
    factories = {
        "help": lambda: HelpScreen(page(2)),
        "confirm": lambda: ConfirmCost("Create the cluster", ["cluster c1"], 376.8, "c1"),
        "resume": lambda: ResumeScreen("demo-project-01 / europe-west4-a / c1"),
        "palette": lambda: None,
    }
    await _quits_from(factories[which])


@pytest.mark.asyncio
@pytest.mark.parametrize("key", ["f1", "question_mark"])
async def test_help_opens_from_the_start_up_summary_and_closes_again(key):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await app.start_page_ready.wait()
        summary = ResumeScreen("demo-project-01 / europe-west4-a / c1")
        app.push_screen(summary)
        await until(pilot, lambda: app.screen is summary and summary.is_mounted, what="the summary")
        await pilot.press(key)
        await until(pilot, lambda: isinstance(app.screen, HelpScreen) and app.screen.is_mounted, what="help over the summary")
        await pilot.press(key)
        await until(pilot, lambda: app.screen is summary, what="help closed, the summary back")


@pytest.mark.asyncio
async def test_question_mark_in_the_confirmation_field_is_typed_not_help():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await app.start_page_ready.wait()
        confirm = ConfirmCost("Create the cluster", ["cluster c1"], 376.8, "c1")
        app.push_screen(confirm)
        await until(pilot, lambda: app.screen is confirm and confirm.is_mounted, what="the confirmation")
        await pilot.press("question_mark")
        await pilot.pause()
        assert app.screen is confirm
        assert confirm.query_one(Input).value == "?"
        await pilot.press("f1")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen) and app.screen.is_mounted, what="F1 opens help while typing")


@pytest.mark.asyncio
async def test_after_a_typo_and_enter_the_confirmation_field_keeps_the_keys():
    """The type-the-name confirmation: Enter on a wrong name warns and leaves the focus in the
    field, so Backspace and typing fix it at once (no Tab needed)."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await app.start_page_ready.wait()
        confirm = ConfirmCost("Create the cluster", ["cluster c1"], 376.8, "c1")
        app.push_screen(confirm)
        await until(pilot, lambda: app.screen is confirm and confirm.query(Input), what="the confirmation")
        field = confirm.query_one(Input)
        await until(pilot, lambda: app.focused is field, what="the field focused")
        await pilot.press("c", "2", "enter")
        await until(pilot, lambda: any("Type c1 exactly" in n.message for n in app._notifications),
                    what="the warning")
        assert app.screen is confirm and app.focused is field
        await pilot.press("backspace", "1")
        await pilot.pause()
        assert field.value == "c1"
        await pilot.press("enter")
        await until(pilot, lambda: app.screen is not confirm, what="confirmed")


@pytest.mark.asyncio
@pytest.mark.parametrize("step", [0, 3])
async def test_footer_offers_no_typed_keys_while_a_text_field_has_focus(step):
    app = make_app(step)
    async with app.run_test(size=SIZE) as pilot:
        await app.start_page_ready.wait()
        app.query_one("StepList").focus()
        await pilot.pause()
        await until(pilot, lambda: "?" in footer_keys(app), what="? Help in the footer with the sidebar focused")
        field = app.current_page.query(Input).first()
        field.focus()
        await until(pilot, lambda: app.focused is field, what="the field focused")
        await pilot.pause()
        keys = footer_keys(app)
        assert "?" not in keys and "[" not in keys and "]" not in keys, keys
        await pilot.press("question_mark")
        await pilot.pause()
        assert field.value.endswith("?")
