"""The deploy lease in the wizard (screens/lease_ui.py): a watcher sees who drives in the header,
is asked before it changes anything (Watch only: nothing changes; Take over: it goes on and holds
the lease), a dead holder is replaced without a question, the Operate page uses the same one lease,
and a wizard that only looks never writes the lease."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from textual.widgets import Button, Input, Log

from rhaii_tui import manifests as m
from rhaii_tui.app import RhaiiApp
from rhaii_tui.config import GATEWAY_NAMESPACE, DeployConfig
from rhaii_tui.lease import LEASE_NAME, Identity, Lease, read_lease
from rhaii_tui.screens.lease_ui import LeaseHeldScreen
from rhaii_tui.steps.context import StepContext
from rhaii_tui.widgets.confirm_cost import ConfirmCost
from rhaii_tui.widgets.target_header import HeaderBar

from pilothelpers import until

SIZE = (120, 40)
ALICE = Identity("alice", "alices-laptop", 4242)  # another machine: her process cannot be checked from here
ALICE_DRIVES = "watching · driven by alice@alices-laptop, pid 4242"


def make_app(world, start_step: int, **cfg) -> RhaiiApp:
    return RhaiiApp(DeployConfig(project=world.endpoints["project"], **cfg), profile=world.profile(),
                    start_step=start_step)


def context(world) -> StepContext:
    return StepContext(DeployConfig(project=world.endpoints["project"]), world.profile())


@contextlib.contextmanager
def alice_deploying(world):
    ctx = context(world)
    lease = Lease(ctx.kube, ctx.cfg.namespace, identity=ALICE, command="apply")
    assert lease.acquire()
    lease.start_renewing(interval=1.0)
    try:
        yield ctx, lease
    finally:
        lease.release()


@contextlib.asynccontextmanager
async def running(app: RhaiiApp):
    async with app.run_test(size=SIZE) as pilot:  # the app gives its lease back as it closes
        await app.start_page_ready.wait()
        yield pilot


def filters_present(ctx: StepContext) -> list[str]:
    session = ctx.kube()
    return [name for name in m.envoyfilter_names(ctx.cfg.service).values()
            if session.get(m.ENVOYFILTER_API_VERSION, "EnvoyFilter", name, GATEWAY_NAMESPACE) is not None]


def holder_now(ctx: StepContext) -> str | None:
    info = read_lease(ctx.kube(), ctx.cfg.namespace)
    return info.holder if info is not None else None


def notified(app: RhaiiApp, text: str) -> bool:
    return any(text in str(n.message) for n in app._notifications)


async def press_apply(pilot, app: RhaiiApp) -> None:
    page = app.current_page
    await until(pilot, lambda: getattr(page, "probes", 0) > 0, what="step 7's first read")
    button = page.query_one("#ef-apply", Button)
    await until(pilot, lambda: not button.disabled and not page.busy, what="the Apply button")
    button.press()


@pytest.mark.asyncio
async def test_watcher_sees_the_holder_and_chooses_watch_only_then_take_over(make_sim_world):
    world = make_sim_world("partial")
    with alice_deploying(world) as (ctx, alice):
        app = make_app(world, 7)
        async with running(app) as pilot:
            bar = app.query_one(HeaderBar)
            await until(pilot, lambda: bar.lease == ALICE_DRIVES, what="the holder in the header (read on connect)")
            assert "driven by alice@alices-laptop" in str(bar.render())

            await press_apply(pilot, app)
            await until(pilot, lambda: isinstance(app.screen, LeaseHeldScreen) and app.screen.is_mounted, what="the question")
            question = str(app.screen.query_one("#lease-what").render())
            assert "alice@alices-laptop, pid 4242 has been changing this deployment since" in question
            assert "renewed" in question
            app.screen.query_one("#lease-watch", Button).press()  # Watch only
            await until(pilot, lambda: notified(app, "Watching only"), what="the notification")
            assert not isinstance(app.screen, LeaseHeldScreen)
            assert await asyncio.to_thread(filters_present, ctx) == []  # nothing applied
            assert await asyncio.to_thread(holder_now, ctx) == ALICE.holder  # her lease untouched
            page = app.current_page
            assert not page.busy and not page.query_one("#ef-apply", Button).disabled
            assert app.step_states.get(7) is None or app.step_states[7].status.value != "failed"
            assert bar.lease == ALICE_DRIVES

            await press_apply(pilot, app)
            await until(pilot, lambda: isinstance(app.screen, LeaseHeldScreen) and app.screen.is_mounted, what="the question again")
            app.screen.query_one("#lease-take", Button).press()
            await until(pilot, lambda: len(filters_present(ctx)) == 3, what="the filters applied")
            mine = Identity.current().holder
            assert mine != ALICE.holder
            assert await asyncio.to_thread(holder_now, ctx) == mine
            await until(pilot, lambda: not bar.lease, what="the header to stop saying alice drives")
            await until(pilot, lambda: alice.lost is not None or not alice.held, what="alice to learn she lost it")
            assert alice.lost is not None and alice.lost.holder == mine


@pytest.mark.asyncio
async def test_a_dead_holder_is_replaced_without_a_question(make_sim_world):
    world = make_sim_world("partial")
    ctx = context(world)
    stale = Lease(ctx.kube, ctx.cfg.namespace, identity=ALICE, ttl=0.5, command="apply")
    assert stale.acquire()  # and never renewed: it expires
    app = make_app(world, 7)
    async with running(app) as pilot:
        await until(pilot, lambda: not read_lease(ctx.kube(), ctx.cfg.namespace).live(), what="her lease to expire")
        await press_apply(pilot, app)
        await until(pilot, lambda: len(filters_present(ctx)) == 3, what="the filters applied")
        assert not any(isinstance(s, LeaseHeldScreen) for s in app.screen_stack)
        assert await asyncio.to_thread(holder_now, ctx) == Identity.current().holder
        assert not app.query_one(HeaderBar).lease


@pytest.mark.asyncio
async def test_a_wizard_that_only_looks_never_writes_the_lease(make_sim_world):
    world = make_sim_world("deployed")
    ctx = context(world)
    app = make_app(world, 4)
    async with running(app) as pilot:
        for n in (5, 6, 7, 8, 12):
            app.goto_step(n)
            await until(pilot, lambda n=n: app.current_page is not None and app.current_page.number == n
                        and app.step_states.get(n) is not None, what=f"step {n}'s first reading")
        polls = app.lease_keeper.polls
        app._poll_lease()
        await until(pilot, lambda: app.lease_keeper.polls > polls, what="the header's read of the lease")
        assert await asyncio.to_thread(ctx.kube().get, "v1", "ConfigMap", LEASE_NAME, ctx.cfg.namespace) is None
        assert not app.query_one(HeaderBar).lease  # nobody else drives it either
        assert app._lease_keeper.lease is None


@pytest.mark.asyncio
async def test_the_lease_is_taken_on_the_first_change_and_given_back_on_release(make_sim_world):
    world = make_sim_world("partial")
    ctx = context(world)
    app = make_app(world, 7)
    async with running(app) as pilot:
        await press_apply(pilot, app)
        await until(pilot, lambda: len(filters_present(ctx)) == 3, what="the filters applied")
        info = await asyncio.to_thread(read_lease, ctx.kube(), ctx.cfg.namespace)
        assert info is not None and info.command == "wizard" and info.live()
        assert info.holder == Identity.current().holder
        assert notified(app, "now holds the deploy lease")
        renewer = app.lease_keeper.lease._thread
        assert renewer is not None and renewer.is_alive()
    # quitting gives it back (the next wizard need not wait for it to expire) and stops renewing
    assert ctx.kube().get("v1", "ConfigMap", LEASE_NAME, ctx.cfg.namespace) is None
    assert not renewer.is_alive()


@pytest.mark.asyncio
async def test_operate_asks_through_the_same_lease_and_watch_only_leaves_the_replicas(make_sim_world):
    world = make_sim_world("deployed")
    with alice_deploying(world) as (ctx, _alice):
        app = make_app(world, 12, replicas=3)
        async with running(app) as pilot:
            page = app.current_page
            await until(pilot, lambda: page.status is not None and page.status.replicas_ready == 3,
                        what="the status")
            page.query_one("#ops-replicas", Input).value = "4"
            await until(pilot, lambda: "Scale to 4" in str(page.query_one("#ops-hint").render()), what="the hint")
            page.query_one("#ops-scale").press()
            await until(pilot, lambda: isinstance(app.screen, ConfirmCost) and app.screen.query("#confirm"), what="the cost confirmation")  # composed, not just pushed
            confirm = app.screen
            confirm.query_one("#confirm-input", Input).value = app.cfg.cluster
            button = confirm.query_one("#confirm")
            await until(pilot, lambda: not button.disabled, what="the Confirm button")
            button.press()
            await until(pilot, lambda: isinstance(app.screen, LeaseHeldScreen) and app.screen.is_mounted, what="the lease question")
            await pilot.press("escape")  # Watch only
            await until(pilot, lambda: notified(app, "Watching only"), what="the notification")
            assert not page.busy and page.result is None
            assert "Resizing" not in "\n".join(page.query_one(Log).lines)
            svc = await asyncio.to_thread(ctx.kube().get, m.LLMISVC_API_VERSION, "LLMInferenceService",
                                          ctx.cfg.service, ctx.cfg.namespace)
            assert svc["spec"]["replicas"] == 3
            assert await asyncio.to_thread(holder_now, ctx) == ALICE.holder
