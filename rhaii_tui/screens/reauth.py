"""Re-authenticate: the one modal shown when credentials expire or are revoked mid-run.

    app.push_screen(ReauthScreen(profile, "the cluster rejected the credentials (...)"),
                    callback=app._reauth_closed)

It says what happened and what to do (the profile's `reauth_hint`: `gcloud auth
application-default login` on a real cloud, `rhaii-tui sim login` in the simulated one), and
offers [Retry] (runs `profile.reauthenticate()` in a thread; on success it dismisses with True
and the pages carry on: watches reconnect at once, a failed action can be pressed again) and
[Later] (dismisses with False; the app then stays quiet for a while). Nothing on the pages is
touched: config, secrets entered and page states stay as they were. No token is ever shown.
"""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from ..widgets.modal import WizardModal
from textual.widgets import Button, Label, Static


class ReauthScreen(WizardModal[bool]):
    """Credentials expired or revoked: the hint, [Retry] and [Later]. Result: True once re-authenticated."""

    DEFAULT_CSS = """
    ReauthScreen {
        align: center middle;
        background: $background 70%;
        #reauth-box {
            width: 80;
            max-width: 100%;
            height: auto;
            max-height: 100%;
            border: thick $error;
            border-title-style: bold;
            background: $surface;
            padding: 1 2;
        }
        #reauth-what { height: auto; margin: 0 0 1 0; }
        #reauth-hint { height: auto; margin: 0 0 1 0; }
        #reauth-status { height: auto; margin: 0 0 1 0; color: $text-muted; }
        #reauth-status.-error { color: $error; }
        #reauth-buttons { height: auto; align-horizontal: right; }
        #reauth-buttons Button { margin: 0 0 0 2; }
    }
    """

    BINDINGS = [Binding("escape", "later", "Later")]

    def __init__(self, profile: Any, message: str) -> None:
        super().__init__()
        self.profile = profile
        self.message = message
        self.attempts = 0
        self.busy = False

    @property
    def hint(self) -> str:
        return str(getattr(self.profile, "reauth_hint", "") or "Sign in again, then press Retry.")

    def compose(self) -> ComposeResult:
        with Vertical(id="reauth-box") as box:
            box.border_title = "Credentials expired or revoked"
            yield Static(Content.assemble(
                ("What happened: ", "bold"), self.message or "the cloud rejected the credentials.",
                "\nThe wizard keeps your configuration and every page as it is."), id="reauth-what")
            yield Static(Content.assemble(("What to do: ", "bold"), self.hint), id="reauth-hint")
            yield Label("", id="reauth-status")
            with Horizontal(id="reauth-buttons"):
                yield Button("Later", id="reauth-later", compact=True)
                yield Button("Retry", id="reauth-retry", compact=True, variant="primary")

    def on_mount(self) -> None:
        for button in self.query("#reauth-retry").results(Button):
            button.focus()

    # what the user sees -----------------------------------------------------------------------------
    @property
    def status_text(self) -> str:
        return str(self.query_one("#reauth-status", Label).render())

    def show_failure(self, message: str) -> None:
        """A new failure while the modal is open (e.g. another watch): update what happened."""
        if message and not self.busy and not self.attempts and self.query("#reauth-what"):
            self.message = message
            self.query_one("#reauth-what", Static).update(Content.assemble(
                ("What happened: ", "bold"), message,
                "\nThe wizard keeps your configuration and every page as it is."))

    def _set_status(self, text: str, error: bool = False) -> None:
        label = self.query_one("#reauth-status", Label)
        label.update(Content(text))
        label.set_class(error, "-error")

    # actions ----------------------------------------------------------------------------------------
    @on(Button.Pressed, "#reauth-retry")
    def action_retry(self) -> None:
        if self.busy:
            return
        self.busy = True
        self.attempts += 1
        self.query_one("#reauth-retry", Button).disabled = True
        self._set_status("Checking the credentials…")
        profile = self.profile

        def work() -> None:
            try:
                profile.reauthenticate()
            except Exception as e:  # noqa: BLE001 - CredentialsError mostly; always a message, never a trace
                text = str(e) or type(e).__name__
                self._from_thread(self._retry_failed, text)
                return
            self._from_thread(self._retry_ok)

        self.run_worker(work, thread=True, group="reauth", exclusive=True, exit_on_error=False)

    def _from_thread(self, fn: Any, *args: Any) -> None:
        try:
            self.app.call_from_thread(fn, *args)
        except Exception:  # noqa: BLE001 - the app is closing
            pass

    def _retry_failed(self, text: str) -> None:
        self.busy = False
        if not self.is_attached:
            return
        self.query_one("#reauth-retry", Button).disabled = False
        self._set_status(f"Still not signed in (attempt {self.attempts}): {text}", error=True)

    def _retry_ok(self) -> None:
        self.busy = False
        if self.is_attached:
            self.dismiss(True)

    @on(Button.Pressed, "#reauth-later")
    def action_later(self) -> None:
        self.dismiss(False)


__all__ = ["ReauthScreen"]
