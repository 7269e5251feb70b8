"""On start the wizard probes every step and opens on where the deployment stands.

Pilot tests against the emulator in four states: fresh, cluster-ready, mid-step-5 (replicas still
compiling), deployed. No state file is involved: the cluster is the source of truth. Also: a config
with errors leads to Configure, Enter does nothing until the probes are in, refused credentials are
said once with the fix and checked again after signing in, and a wizard told where to start only
fills the sidebar.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

import pytest
from textual.widgets import Button

from rhaii_tui.app import RhaiiApp
from rhaii_tui.config import DeployConfig
from rhaii_tui.screens.pages import CONFIGURE, OPERATE
from rhaii_tui.screens.reauth import ReauthScreen
from rhaii_tui.screens.resume import ResumeScreen
from rhaii_tui.steps import deploy, registry
from rhaii_tui.widgets.step_list import StepList
from rhaii_tui.steps.base import Status, StepState

from pilothelpers import until
from test_reauth import control
from test_screens_4_5 import add_secrets, operators_ready

SIZE = (120, 40)


def make_app(world, **kw) -> RhaiiApp:
    cfg = DeployConfig(project=world.endpoints["project"], replicas=3)
    return RhaiiApp(cfg, profile=world.profile(), state_store=None, resume=True, **kw)


@contextlib.asynccontextmanager
async def summary_shown(app: RhaiiApp):
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, ResumeScreen) and app.screen.is_mounted, what="the summary")
        screen = app.screen
        await until(pilot, lambda: screen.standing is not None, what="every probe")
        await pilot.pause()
        yield pilot, screen


async def enter(pilot, app: RhaiiApp, screen: ResumeScreen) -> None:
    go = screen.query_one("#resume-go", Button)
    # Enter is on "Go to ..." (the focus moves there once every probe is in; it lands a moment later)
    await until(pilot, lambda: app.focused is go, timeout=10, what="the focus on the Go button")
    await pilot.press("enter")
    await until(pilot, lambda: not isinstance(app.screen, ResumeScreen), what="the summary to close")


@pytest.mark.asyncio
async def test_fresh_project_says_nothing_is_done_and_enter_goes_to_preflight(make_sim_world):
    world = make_sim_world("fresh")
    app = make_app(world)
    async with summary_shown(app) as (pilot, screen):
        text = screen.summary_text
        assert "Read 11 steps from the live environment" in text
        assert "0 done" in text
        assert "Nothing is deployed for this target yet: start with step 1 (Preflight checks)." in text
        assert "does not exist" in text  # step 2 says why, from the live project
        assert screen.goto == 1
        # the sidebar has every probed state, not just the summary
        assert all(n in app.step_states for n in range(1, 12))
        await enter(pilot, app, screen)
        assert app.current_step == 1


@pytest.mark.asyncio
async def test_cluster_ready_leads_to_the_first_step_after_the_cluster(make_sim_world):
    world = make_sim_world("cluster-ready")
    app = make_app(world)
    async with summary_shown(app) as (pilot, screen):
        assert app.step_states[2].status is Status.DONE
        assert screen.goto == 3 and "next: step 3" in screen.summary_text
        await enter(pilot, app, screen)
        assert app.current_step == 3


@pytest.mark.asyncio
async def test_mid_step_5_shows_what_the_replicas_are_doing(make_sim_world, tmp_path):
    world = make_sim_world("slow-compile", start_state="cluster-ready", compile_factor=400.0)
    from rhaii_tui.steps.context import StepContext

    ctx = StepContext(DeployConfig(project=world.endpoints["project"], replicas=3), world.profile())
    await asyncio.to_thread(operators_ready, ctx)
    await asyncio.to_thread(add_secrets, ctx)
    await asyncio.to_thread(deploy.apply, ctx)
    app = make_app(world)
    async with summary_shown(app) as (pilot, screen):
        assert app.step_states[5].status is Status.IN_PROGRESS
        assert screen.standing.in_progress == [5]
        text = screen.summary_text
        assert "1 in progress" in text and "0/3 pods ready" in text
        assert screen.goto == 5
        await enter(pilot, app, screen)
        assert app.current_step == 5


@pytest.mark.asyncio
async def test_deployed_world_leads_to_the_cache_proof_and_escape_stays(make_sim_world):
    world = make_sim_world("deployed")
    app = make_app(world)
    async with summary_shown(app) as (pilot, screen):
        for n in range(1, 10):  # deployed and answering: step 9's checks pass on the live service
            assert app.step_states[n].done, (n, app.step_states[n])
        assert screen.goto == 10 and "next: step 10 (Cache routing and throughput)" in screen.summary_text
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, ResumeScreen), what="the summary to close")
        assert app.current_step == 0  # stayed where the wizard opened


@pytest.mark.asyncio
async def test_everything_done_leads_to_operate(make_sim_world):
    world = make_sim_world("deployed")
    app = make_app(world)
    from rhaii_tui.steps import registry

    done = StepState(Status.DONE, "done earlier")
    real = registry.probe_step
    with pytest.MonkeyPatch.context() as mp:  # steps 9-11 are proofs run on request: pretend they ran
        mp.setattr(registry, "probe_step", lambda ctx, n: done if n >= 9 else real(ctx, n))
        async with summary_shown(app) as (pilot, screen):
            assert screen.goto == OPERATE
            assert "All 11 steps done" in screen.summary_text
            await enter(pilot, app, screen)
            assert app.current_step == OPERATE


@pytest.mark.asyncio
async def test_a_page_state_is_not_overwritten_by_a_late_probe(make_sim_world):
    world = make_sim_world("fresh")
    app = make_app(world)
    async with app.run_test(size=SIZE) as pilot:
        mine = StepState(Status.IN_PROGRESS, "creating cluster (the page's own reading)")
        app.set_step_state(2, mine)  # the page reported before the probe answered
        await until(pilot, lambda: isinstance(app.screen, ResumeScreen) and app.screen.standing is not None,
                    what="every probe")
        assert app.step_states[2] is mine


@pytest.mark.asyncio
async def test_no_summary_when_the_wizard_is_told_where_to_start(make_sim_world):
    world = make_sim_world("fresh")
    cfg = DeployConfig(project=world.endpoints["project"], replicas=3)
    app = RhaiiApp(cfg, profile=world.profile(), start_step=4)
    async with app.run_test(size=SIZE) as pilot:
        await app.start_page_ready.wait()
        await pilot.pause(0.5)
        assert not isinstance(app.screen, ResumeScreen) and app.current_step == 4



@pytest.mark.asyncio
async def test_a_config_with_errors_leads_to_configure(make_sim_world):
    world = make_sim_world("fresh")
    cfg = DeployConfig(project=world.endpoints["project"], replicas=3, model="not-a-model-uri")
    app = RhaiiApp(cfg, profile=world.profile(), state_store=None, start_step=None, resume=True)
    async with summary_shown(app) as (pilot, screen):
        text = screen.summary_text
        assert "fix the configuration, then start with step 1" in text
        assert "1 field(s) to fix" in text
        assert str(screen.query_one("#resume-go", Button).label) == "Go to Configure"
        await enter(pilot, app, screen)
        assert app.current_step == CONFIGURE


@pytest.mark.asyncio
async def test_enter_waits_for_the_probes_and_the_progress_line_counts_them(make_sim_world):
    world = make_sim_world("cluster-ready")
    app = make_app(world)
    release = threading.Event()
    real = registry.probe_step

    def slow_step_5(ctx, n):
        if n == 5:
            release.wait(60)
        return real(ctx, n)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(registry, "probe_step", slow_step_5)
        try:
            async with app.run_test(size=SIZE) as pilot:
                await until(pilot, lambda: isinstance(app.screen, ResumeScreen) and app.screen.is_mounted, what="the summary")
                screen = app.screen
                await until(pilot, lambda: len(screen.received) == 10, what="ten probes in")
                progress = str(screen.query_one("#resume-progress").render())
                assert "Checking where the deployment stands… 10/11 steps read" in progress
                assert app.step_states[2].status is Status.DONE  # the sidebar has them as they come
                assert "✔" in app.query_one(StepList).prompt_text(2)
                await pilot.press("enter")  # nothing to go to yet: neither "go" nor "stay"
                await pilot.pause()
                assert app.screen is screen and screen.goto is None
                release.set()
                await until(pilot, lambda: screen.standing is not None, what="the last probe")
                await pilot.pause()
                await enter(pilot, app, screen)
                assert app.current_step == 3
        finally:
            release.set()


@pytest.mark.asyncio
async def test_refused_credentials_are_said_once_and_checked_again_after_signing_in(make_sim_world):
    world = make_sim_world("cluster-ready")
    assert control(world, "revoke-token").status_code == 200
    app = make_app(world)
    async with app.run_test(size=SIZE) as pilot:
        screen = await until(pilot, lambda: app.resume_screen, what="the summary")
        await until(pilot, lambda: screen.standing is not None, what="every probe")
        text = screen.summary_text
        assert "Could not read where the deployment stands: the cloud refused the credentials." in text
        assert text.count("Fix:") == 1 and "ctrl+r" in text  # said once, not once per step
        assert "Traceback" not in text and world.token not in text

        # the re-authenticate modal is up too; sign in (the simulated gcloud login), then Retry
        reauth = await until(pilot, lambda: next((s for s in app.screen_stack if isinstance(s, ReauthScreen)), None),
                             what="the re-authenticate modal")
        assert app.screen is reauth
        assert control(world, "login").status_code == 200
        await until(pilot, lambda: reauth.query("#reauth-retry"), what="the modal's buttons")
        reauth.query_one("#reauth-retry", Button).press()
        await until(pilot, lambda: app.screen is screen, what="back on the summary")
        await until(pilot, lambda: screen.standing is not None and not screen.standing.failed, timeout=90,
                    what="the summary checked again")  # eleven probes again: roomy on a loaded machine
        if screen.goto != 3:
            # On a loaded machine a probe of that first re-check can still be turned away while the new
            # sign-in settles (said as "unknown", never as failed): the user checks again, with r.
            assert screen.standing.unknown, screen.summary_text
            await pilot.press("r")
            await until(pilot, lambda: screen.standing is not None and screen.goto == 3, timeout=90,
                        what="the summary checked again, with r")
        assert screen.goto == 3 and "next: step 3" in screen.summary_text
        assert app.step_states[2].status is Status.DONE
        await enter(pilot, app, screen)
        assert app.current_step == 3


@pytest.mark.asyncio
async def test_told_where_to_start_the_probes_fill_the_sidebar_without_a_summary(make_sim_world):
    world = make_sim_world("cluster-ready")
    cfg = DeployConfig(project=world.endpoints["project"], replicas=3)
    app = RhaiiApp(cfg, profile=world.profile(), state_store=None, start_step=4, resume=True)
    async with app.run_test(size=SIZE) as pilot:
        sidebar = app.query_one(StepList)
        await until(pilot, lambda: all(n in app.step_states for n in range(1, 12)), what="every probe")
        await until(pilot, lambda: "✔" in sidebar.prompt_text(2), what="step 2 done in the sidebar")
        assert app.resume_screen is None and not isinstance(app.screen, ResumeScreen)
        assert app.current_step == 4


@pytest.mark.asyncio
async def test_on_a_small_terminal_the_buttons_stay_on_screen_and_the_summary_scrolls(make_sim_world):
    world = make_sim_world("deployed")
    app = make_app(world)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, ResumeScreen) and app.screen.is_mounted, what="the summary")
        screen = app.screen
        await until(pilot, lambda: screen.standing is not None, what="every probe")
        await pilot.pause()
        go = screen.query_one("#resume-go", Button)
        box = screen.query_one("#resume-box").region
        assert go.region.height == 1 and box.contains_region(go.region), (go.region, box)
        assert "Go to step 10: Cache routing and throughput" in str(go.label)
        scroll = screen.query_one("#resume-scroll")
        assert scroll.max_scroll_y > 0  # more lines than room: the list scrolls ...
        await pilot.press("pagedown")  # ... with the focus still on "Go to"
        await until(pilot, lambda: scroll.scroll_y > 0, what="the summary to scroll")
        assert app.focused is go
        await enter(pilot, app, screen)
        assert app.current_step == 10
