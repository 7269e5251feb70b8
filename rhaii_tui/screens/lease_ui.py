"""The deploy lease in the wizard: two wizards on one target do not fight.

A wizard that only looks never writes anything. Before its first change to a deployment (the
first thing a step page's mutating action does: `StepScreen.lease_first`, which calls
`WizardLease.ready`), it takes the lease (lease.py: a ConfigMap in the workload namespace) and keeps
renewing it until it quits. If another live rhaii-tui holds it, the user is asked: watch only (the
action does not start: nothing changes, a notification says so) or take over. Meanwhile the header
says who drives the deployment ("watching · driven by user@host, pid N"), read once connected and
then every app.LEASE_POLL_SECONDS (one GET of the ConfigMap; none while this wizard holds it).

Before the cluster and the namespace exist (steps 1-2, the start of step 3) there is nothing to
lease, as in the headless `apply`.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from typing import Any, Callable

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from ..widgets.modal import WizardModal
from textual.widgets import Button, Static

from ..cloud.gke import CloudError
from ..lease import Lease, LeaseHeld, LeaseInfo, read_lease

log = logging.getLogger(__name__)


class WatchOnly(CloudError):
    """The user chose to watch only: the action must not change anything."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__("conflict", message, fix)


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds} s" if seconds < 120 else f"{seconds // 60} min"


def held_message(info: LeaseInfo) -> str:
    since = time.strftime("%H:%M:%S", time.localtime(info.acquired)) if info.acquired else "?"
    return (f"{info.who()} has been changing this deployment since {since} "
            f"(renewed {_ago(info.age())} ago).")


class LeaseHeldScreen(WizardModal[bool]):
    """Another rhaii-tui holds the lease. Result: True to take over, False to watch only."""

    DEFAULT_CSS = """
    LeaseHeldScreen {
        align: center middle;
        background: $background 70%;
        #lease-box { width: 80; max-width: 100%; height: auto; border: thick $warning;
                     border-title-style: bold; background: $surface; padding: 1 2; }
        #lease-what { height: auto; margin: 0 0 1 0; }
        #lease-buttons { height: auto; align-horizontal: right; }
        #lease-buttons Button { margin: 0 0 0 2; width: auto; }
    }
    """

    BINDINGS = [Binding("escape", "watch", "Watch only")]

    def __init__(self, info: LeaseInfo, what: str) -> None:
        super().__init__()
        self.info = info
        self.what = what

    def compose(self) -> ComposeResult:
        with Vertical(id="lease-box") as box:
            box.border_title = "Another rhaii-tui is deploying"
            yield Static(Content.assemble(
                held_message(self.info), "\n\n",
                ("Watch only", "bold"), f": {self.what} is not done; this wizard keeps showing the deployment live.\n",
                ("Take over", "bold"), ": only if that rhaii-tui is gone or you agreed with its user; it will stop "
                "changing things at its next step."), id="lease-what")
            with Horizontal(id="lease-buttons"):
                yield Button("Take over", id="lease-take", compact=True, variant="warning")
                yield Button("Watch only", id="lease-watch", compact=True, variant="primary")

    def on_mount(self) -> None:
        self.query_one("#lease-watch", Button).focus()

    def action_watch(self) -> None:
        self.dismiss(False)

    @on(Button.Pressed, "#lease-watch")
    def _watch(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(False)

    @on(Button.Pressed, "#lease-take")
    def _take(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(True)


class WizardLease:
    """The wizard's one deploy lease (app.lease_keeper)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lease: Lease | None = None
        self._lock = threading.Lock()
        self.polls = 0          # reads of the lease for the header (tests wait for one)
        self._checking = False  # a ready() check is under way (UI thread only)
        self._go_once = False   # ready() says go to the action it calls back (UI thread only)
        self._stops: "weakref.WeakSet[threading.Event]" = weakref.WeakSet()  # set when the lease is lost

    def ready(self, ctx: Any, what: str, again: Callable[[], None]) -> bool:
        """UI thread, the first thing an action that changes the deployment does. True: go on now
        (this wizard holds the lease; or not connected: the action says so itself). False: the lease
        is checked first in a worker (the user may be asked); then `again()` runs once this wizard may
        change things (it holds the lease, or there is nothing to lease yet), or a notification says
        that nothing was done (the user chose to watch only)."""
        if ctx is None:
            return True
        if self._go_once:
            self._go_once = False
            return True
        lease = self.lease
        if lease is not None and lease.held and lease.namespace == ctx.cfg.namespace:
            return True
        if self._checking:
            self.app.notify("Checking who drives this deployment first…", title="Deploy lease", timeout=3,
                            markup=False)
            return False
        self._checking = True

        def work() -> None:
            refused: str | None = None
            try:
                self.claim(ctx, what)
            except WatchOnly as e:
                refused = f"{e.message} {e.fix}"
            except Exception:  # noqa: BLE001 - the lease is a courtesy between wizards; the action goes on
                log.exception("deploy lease check failed; the action goes on")
            try:
                self.app.call_from_thread(self._checked, again, refused)
            except RuntimeError:  # the app is closing
                pass

        self.app.run_worker(work, thread=True, group="lease-claim", exit_on_error=False)
        return False

    def _checked(self, again: Callable[[], None], refused: str | None) -> None:
        self._checking = False
        if refused is not None:
            self.app.notify(refused, title="Watching only", severity="warning", timeout=12, markup=False)
            return
        self._go_once = True
        try:
            again()
        finally:
            self._go_once = False

    def stop_on_loss(self, stop: threading.Event) -> None:
        """`stop` is set if another rhaii-tui takes the lease over (a long action stops at its next step)."""
        self._stops.add(stop)

    @property
    def held(self) -> bool:
        return self.lease is not None and self.lease.held

    def claim(self, ctx: Any, what: str) -> None:
        """From a worker thread, before a change. Returns when this wizard may change the deployment;
        raises WatchOnly (a CloudError) when the user chose to watch only (the caller shows it, changes nothing)."""
        with self._lock:
            ns = ctx.cfg.namespace
            if self.held and self.lease.namespace == ns:
                return
            try:
                if ctx.kube_or_none() is None:
                    return  # no cluster yet: nothing to lease
                lease = Lease(ctx.kube, ns, command="wizard")
                try:
                    if not lease.acquire():
                        return  # no namespace yet (step 3 creates it)
                except LeaseHeld as e:
                    if not self._ask(e.info, what):
                        raise WatchOnly(
                            f"Watching only: {held_message(e.info)} {what[:1].upper() + what[1:]} "
                            "was not done; nothing was changed.",
                            "Take over from the same button if that rhaii-tui is gone (or wait: a lease it "
                            "stops renewing expires within a minute).") from None
                    lease.acquire(force=True)
            except CloudError as e:
                if isinstance(e, WatchOnly):
                    raise
                log.info("deploy lease not taken (%s); the action goes on", e.message)
                return
            if self.lease is not None:
                self.lease.release()
            self.lease = lease
            lease.start_renewing(on_lost=self._lost)
        self._show(None)
        self.app.call_from_thread(self.app.notify, f"This wizard now holds the deploy lease for {ns}.",
                                  title="Deploy lease", markup=False)

    def _ask(self, info: LeaseInfo, what: str) -> bool:
        """Ask on screen from this worker thread; wait for the answer."""
        answer: list[bool] = []
        done = threading.Event()

        def closed(take: bool | None) -> None:
            answer.append(bool(take))
            done.set()

        def show() -> None:  # returns at once: waiting for the dialog's mount here could wait for good
            self.app.push_screen(LeaseHeldScreen(info, what), closed)

        try:
            self.app.call_from_thread(show)
        except RuntimeError:  # the app is closing
            return False
        while not done.wait(0.2):
            if self.app._exit:
                return False
        return answer[0]

    def _lost(self, info: LeaseInfo | None) -> None:
        if info is None:  # the lease (or its namespace) went and nobody holds it: nothing to say
            log.info("the deploy lease is gone (its namespace or cluster was deleted)")
            return
        for stop in list(self._stops):
            stop.set()
        who = info.who()
        self._show(info)
        try:
            self.app.call_from_thread(self.app.notify, f"{who} took over the deploy lease: this wizard now only "
                                      "watches until you act again.", title="Deploy lease", severity="warning",
                                      timeout=12, markup=False)
        except RuntimeError:  # the app is closing
            pass

    def _show(self, info: LeaseInfo | None) -> None:
        text = f"watching · driven by {info.who()}" if info is not None and info.live() else ""
        try:
            self.app.call_from_thread(self.app.show_lease, text)
        except RuntimeError:
            pass

    def poll(self, ctx: Any) -> None:
        """From a worker thread: who holds the lease now (for the header). Reads only."""
        if self.held:
            return
        try:
            session = ctx.kube_or_none()
            info = read_lease(session, ctx.cfg.namespace) if session is not None else None
        except Exception as e:  # noqa: BLE001 - the header is a detail; the pages show API trouble
            log.debug("lease poll: %s", e)
            return
        finally:
            self.polls += 1
        mine = info is not None and self.lease is not None and info.holder == self.lease.identity.holder
        self._show(None if mine else info)

    def release(self) -> None:
        with self._lock:
            if self.lease is not None:
                self.lease.release()
                self.lease = None


__all__ = ["WizardLease", "WatchOnly", "LeaseHeldScreen", "held_message"]
