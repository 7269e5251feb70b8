"""Pilot walks through the screens of steps 1-3 on the emulator: what a user sees and does.

Each test gets its own simulated world (fixtures in conftest.py) and its own state directory.
Assertions are on what is on screen (the rendered screen text, a widget's rendered text) and on
what the world holds afterwards.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import stat
from pathlib import Path

import pytest
from textual import events
from textual.widgets import Button, DataTable, Input, Select, Static

from rhaii_tui.app import RhaiiApp
from rhaii_tui.config import DeployConfig, StateStore
from rhaii_tui.screens.preflight import ConfirmModal
from rhaii_tui.widgets.checklist import Checklist
from rhaii_tui.widgets.confirm_cost import ConfirmCost
from rhaii_tui.widgets.op_progress import PhaseProgress
from rhaii_tui.widgets.quota_pane import QuotaPane
from rhaii_tui.widgets.secret_form import SecretForm

from pilothelpers import until

SIZE = (120, 40)
CLUSTER = "rhaii-tpu-scaleout-cluster"
HF_CANARY = "hf_" + "Canary7Tok3nQ" * 3
PW_CANARY = "Canary-Registry-Pa55word-9931"
USER = "canary-user"
PASS_ROWS = ("credentials", "project", "permissions", "api", "zone", "quota")


# --- helpers --------------------------------------------------------------------------------------


def make_app(world, tmp_path: Path, start_step: int, **cfg) -> RhaiiApp:
    values = {"project": world.endpoints["project"]}
    values.update(cfg)
    return RhaiiApp(DeployConfig(**values), profile=world.profile(), state_store=StateStore(tmp_path / "state"),
                    start_step=start_step)


@contextlib.asynccontextmanager
async def running(app: RhaiiApp, size=SIZE):
    async with app.run_test(size=size) as pilot:
        await app.start_page_ready.wait()
        yield pilot


def screen_text(app: RhaiiApp) -> str:
    """The characters on the terminal right now (what the user sees)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def rendered(widget) -> str:
    return str(widget.render())




def state_of(app: RhaiiApp, number: int) -> str:
    state = app.step_states.get(number)
    return str(getattr(state, "status", "")) if state is not None else ""


async def checks_done(pilot) -> Checklist:
    page = pilot.app.current_page
    await until(pilot, lambda: page.is_mounted and page.query(Checklist), what="step 1's page")
    checklist = page.query_one(Checklist)
    await until(pilot, lambda: page._results and not page._checking, what="the checks to finish")
    await pilot.pause()
    return checklist


async def plan_loaded(pilot):
    page = pilot.app.current_page
    await until(pilot, lambda: not page._loading and (page._plan is not None or page._last_error is not None),
                what="the plan")
    await pilot.pause()
    return page


async def confirm_cost(pilot, word: str = CLUSTER) -> str:
    """Type the cluster name into ConfirmCost and confirm; returns the modal's text."""
    app = pilot.app
    await until(pilot, lambda: isinstance(app.screen, ConfirmCost) and app.screen.is_mounted, what="the cost confirmation")
    modal = app.screen
    # on the terminal once a screen update has laid it out
    await until(pilot, lambda: modal.query_one("#confirm", Button).is_on_screen, what="the confirmation shown")
    text = screen_text(app)
    assert modal.query_one("#confirm", Button).disabled, "the confirm button waits for the typed name"
    await type_into(pilot, "#confirm-input", word[:-1])
    assert modal.query_one("#confirm", Button).disabled, "a partial name does not confirm"
    await pilot.press(word[-1])
    await pilot.pause()
    assert not modal.query_one("#confirm", Button).disabled
    await pilot.click("#confirm")
    await until(pilot, lambda: not isinstance(app.screen, ConfirmCost), what="the confirmation to close")
    return text


async def type_into(pilot, selector: str, text: str, keys: int = 3) -> None:
    """Focus the field, type the first `keys` characters key by key and paste the rest (as users
    paste tokens; each simulated key press costs the test ~0.1 s with the emulator running)."""
    field = pilot.app.screen.query_one(selector, Input)
    field.focus()
    await pilot.pause()
    await pilot.press(*text[:keys])
    if text[keys:]:
        field.post_message(events.Paste(text[keys:]))
        await pilot.pause()


def files_under(root: Path, exclude: tuple[Path, ...] = ()) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not any(p == e or p.is_relative_to(e) for e in exclude)]


# --- step 1 ---------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_not_connected_shows_no_pass_and_says_how_to_connect(tmp_path):
    app = RhaiiApp(DeployConfig(project="demo-project-01"), profile=None, start_step=1)
    async with running(app) as pilot:
        checklist = app.query_one(Checklist)
        await until(pilot, lambda: "Not connected" in screen_text(app), what="step 1's message")
        assert all(checklist.status(cid) == "pending" for cid in checklist.ids)
        text = screen_text(app)
        assert "✔" not in "".join(checklist.row_text(cid) for cid in checklist.ids)
        assert "Not connected" in text and "not checked" in text
        assert "Limit: not checked yet" in rendered(app.query_one(QuotaPane))
        # steps 2 and 3 say the same, offer nothing billable, and the secret form still checks as you type
        app.goto_step(2)
        await until(pilot, lambda: app.current_page.is_mounted and "Step 2" in screen_text(app), what="step 2")
        await until(pilot, lambda: "Not connected to a cloud" in screen_text(app), what="step 2's message")
        assert not any(b.has_class("-shown") for b in app.query("#cl-actions Button"))
        app.goto_step(3)
        await until(pilot, lambda: app.current_page.is_mounted and "Step 3" in screen_text(app), what="step 3")
        await until(pilot, lambda: "Not connected to a cloud" in screen_text(app), what="step 3's message")
        await type_into(pilot, "#hf-token", "hf_short")
        await until(pilot, lambda: "has 5 after 'hf_'" in rendered(app.query_one("#sc-hf .secret-msg", Static)),
                    what="the token's shape")
        assert app.query_one("#sc-apply", Button).disabled
        assert [s.name for s in app.current_page.secrets_input().specs] == []


@pytest.mark.asyncio
async def test_low_quota_fails_the_quota_row_with_what_to_request(make_sim_world, tmp_path):
    world = make_sim_world("low-quota")
    app = make_app(world, tmp_path, 1)
    async with running(app) as pilot:
        checklist = await checks_done(pilot)
        assert checklist.status("quota") == "fail"
        row = checklist.row_text("quota")
        assert "Only 8 chips of TPU v6e in europe-west4; 12 needed" in row
        assert "Fix: Request TPUs per TPU family" in row and "at least 12 chips" in row
        pane = rendered(app.query_one(QuotaPane))
        for needle in ("Need 12 chips (3 replicas × 4)", "On-demand limit 8 chips", "4 chips short",
                       "Spot beside it 64 chips", "TPUS-PER-TPU-FAMILY-per-project-region",
                       "https://console.cloud.google.com/iam-admin/quotas?project=rhaii-demo-project"):
            assert needle in pane, needle
        assert all(checklist.status(c) == "pass" for c in ("credentials", "project", "permissions", "api", "zone"))
        assert state_of(app, 1) == "failed"
        assert "1 failed" in rendered(app.query_one("#pf-status"))
        # the fix is one Enter away on the clipboard
        app.query_one("#check-quota").focus()
        await pilot.press("enter")
        assert "--preferred-value=12" in app.clipboard


@pytest.mark.asyncio
async def test_missing_permission_fails_the_permissions_row_with_the_role(make_sim_world, tmp_path):
    world = make_sim_world("missing-permission")
    app = make_app(world, tmp_path, 1)
    async with running(app) as pilot:
        checklist = await checks_done(pilot)
        assert checklist.status("permissions") == "fail"
        text = checklist.row_text("permissions")
        assert "container.clusters.create" in text
        assert "Fix: Ask a project owner to grant you roles/container.admin" in text
        assert "permissions" in rendered(app.current_page.query_one(".step-state", Static)).lower()


@pytest.mark.asyncio
async def test_api_disabled_row_then_enable_it_from_the_screen(make_sim_world, tmp_path):
    world = make_sim_world("api-disabled")
    app = make_app(world, tmp_path, 1)
    async with running(app) as pilot:
        checklist = await checks_done(pilot)
        assert checklist.status("api") == "fail"
        assert "gcloud services enable container.googleapis.com --project rhaii-demo-project" in \
            checklist.row_text("api")
        enable = app.query_one("#pf-enable", Button)
        assert enable.has_class("-shown")
        # the button is on the terminal once a screen update has laid it out
        await until(pilot, lambda: "Enable the Kubernetes Engine API" in screen_text(app), what="the enable button")
        app.query_one("#check-api").focus()  # page keys work once the focus is in the page
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal) and app.screen.is_mounted, what="the enable question")
        assert "gcloud services enable container.googleapis.com" in rendered(app.screen.query_one("#ask-text"))
        await pilot.press("y")
        await until(pilot, lambda: checklist.status("api") == "pass" and not app.current_page._checking,
                    what="the API enabled and the checks re-run")
        await pilot.pause()
        assert all(checklist.status(c) == "pass" for c in PASS_ROWS)
        assert not enable.has_class("-shown")
        assert state_of(app, 1) == "done"


@pytest.mark.asyncio
async def test_secret_file_given_in_step_1_is_checked(sim_world, tmp_path):
    bad = tmp_path / "hf.yaml"
    bad.write_text("apiVersion: v1\nkind: Secret\nmetadata:\n  name: huggingface-token\ntype: Opaque\n"
                   "stringData:\n  token: YOUR_HF_TOKEN_HERE\n")
    app = make_app(sim_world, tmp_path, 1)
    async with running(app) as pilot:
        await checks_done(pilot)
        page = app.current_page
        first_run = page._run
        app.query_one("#pf-file-hf", Input).value = str(bad)
        app.query_one("#pf-file-hf", Input).focus()
        await pilot.press("enter")  # re-runs the checks with the file
        await until(pilot, lambda: page._run > first_run, what="the re-run")
        checklist = await checks_done(pilot)
        assert checklist.status("secrets") == "fail"
        assert "still holds the template placeholder YOUR_HF_TOKEN_HERE" in checklist.row_text("secrets")


# --- step 2 ---------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_stockout_is_shown_with_the_zones_that_have_v6e_and_a_zone_can_be_picked(make_sim_world, tmp_path):
    world = make_sim_world("stockout", stockout_fail_seconds=200000)  # GKE would give up after 100 s of wall time
    app = make_app(world, tmp_path, 2)
    async with running(app) as pilot:
        page = await plan_loaded(pilot)
        await pilot.click("#cl-create")
        await confirm_cost(pilot)
        await until(pilot, lambda: app.query_one("#cl-error").has_class("-shown") and not page._busy,
                    what="the stockout message")
        error = rendered(app.query_one("#cl-error", Static))
        assert "ZONE_RESOURCE_POOL_EXHAUSTED" in error
        assert "no free TPU v6e capacity" in error and "not a quota problem" in error
        assert "us-east5-a" in error
        # the zone chooser is on the terminal once a screen update has laid it out
        await until(pilot, lambda: "Zones with TPU v6e" in screen_text(app), what="the zone chooser")
        zone = app.query_one("#cl-zone", Select)
        options = [value for _label, value in zone._options]
        assert "us-east5-a" in options and "europe-west4-a" not in options
        assert state_of(app, 2) == "failed"
        # named from the instance group while GKE's operation runs: what bills, the options and their commands
        assert "Stockout" in error and "still RUNNING" in error
        assert "Already running and billing" in error and "~$6.00/day" in error
        for needle in ("Keep waiting in europe-west4-a", "Another region (a new cluster)", "Spot TPU v6e",
                       "--spot", "Flex-start", "--flex-start"):
            assert needle in error, needle
        await until(pilot, lambda: app.query_one("#cl-wait", Button).has_class("-shown"),
                    what="the offer to keep waiting")
        zone.value = "us-east5-a"
        await pilot.click("#cl-zone-use")
        await until(pilot, lambda: app.cfg.zone == "us-east5-a", what="the zone saved")
        await plan_loaded(pilot)
        await until(pilot, lambda: page._plan is not None and page._plan.zone == "us-east5-a", what="the new plan")
        await pilot.pause()
        plan = rendered(app.query_one("#cl-plan", Static))
        assert "in us-east5-a" in plan
        assert "already exists in europe-west4-a" in plan  # honest: the first cluster is still there


@pytest.mark.asyncio
async def test_wait_here_keeps_following_a_stocked_out_pool(make_sim_world, tmp_path):
    world = make_sim_world("stockout", stockout_fail_seconds=200000)  # GKE gives up after 100 s of wall time
    app = make_app(world, tmp_path, 2)
    async with running(app) as pilot:
        page = await plan_loaded(pilot)
        await pilot.click("#cl-create")
        await confirm_cost(pilot)
        await until(pilot, lambda: app.query_one("#cl-wait", Button).has_class("-shown") and not page._busy,
                    what="the stockout with the offer to wait")
        await until(pilot, lambda: "Wait here" in screen_text(app), what="Wait here on the terminal")
        await pilot.click("#cl-wait")
        await until(pilot, lambda: "still waiting, as asked" in rendered(app.query_one("#cl-reattached")),
                    what="the wait going on")
        assert page._busy == "ensure" and not app.query_one("#cl-wait", Button).has_class("-shown")
        await pilot.click("#cl-stop")
        await until(pilot, lambda: not page._busy, what="the follow stopped")
        ops = {o["type"]: o["status"] for o in world.state()["operations"]}
        assert ops["CREATE_NODE_POOL"] == "RUNNING", "stopping the follow leaves GKE's operation alone"


@pytest.mark.asyncio
@pytest.mark.parametrize("scenario,needle", [
    ("missing-permission", "roles/container.admin"),
    ("low-quota", "12 chips"),
])
async def test_create_errors_show_message_and_fix(make_sim_world, tmp_path, scenario, needle):
    world = make_sim_world(scenario)
    app = make_app(world, tmp_path, 2)
    async with running(app) as pilot:
        page = await plan_loaded(pilot)
        await pilot.click("#cl-create")
        await confirm_cost(pilot)
        await until(pilot, lambda: app.query_one("#cl-error").has_class("-shown") and not page._busy,
                    what="the error")
        error = rendered(app.query_one("#cl-error", Static))
        assert "Fix: " in error and needle in error
        assert "Traceback" not in screen_text(app)
        assert state_of(app, 2) == "failed"
        if scenario == "missing-permission":
            assert not world.state()["clusters"], "nothing was created"


@pytest.mark.asyncio
async def test_api_disabled_step_2_says_how_to_enable_it(make_sim_world, tmp_path):
    world = make_sim_world("api-disabled")
    app = make_app(world, tmp_path, 2)
    async with running(app) as pilot:
        await plan_loaded(pilot)
        error = rendered(app.query_one("#cl-error", Static))
        assert "gcloud services enable container.googleapis.com" in error
        assert not app.query_one("#cl-create", Button).has_class("-shown")
        assert state_of(app, 2) == "failed"


@pytest.mark.asyncio
async def test_reopened_wizard_reattaches_to_the_creation_in_flight(make_sim_world, tmp_path):
    world = make_sim_world("fresh", speed=40)  # the cluster create takes ~7 s here
    first = make_app(world, tmp_path, 2)
    async with running(first) as pilot:
        await plan_loaded(pilot)
        await pilot.click("#cl-create")
        await confirm_cost(pilot)
        await until(pilot, lambda: world.state()["operations"], what="the create sent")
        assert first.current_page._busy == "ensure"
    # the first wizard is gone (quit mid-creation); a second one opens step 2
    second = make_app(world, tmp_path, 2)
    async with running(second) as pilot:
        page = await plan_loaded(pilot)
        label = second.query_one("#cl-reattached")
        await until(pilot, lambda: label.has_class("-shown"), what="the reattach")
        assert "Reattached to operation operation-" in screen_text(second)
        assert "create cluster" in rendered(label)
        assert page._busy == "follow"
        bar = second.query_one("#phase-cluster", PhaseProgress)
        await until(pilot, lambda: bar.state == "running", what="the control plane bar following")
        # GKE reports no progress for a control plane: the bar follows time against the guide's ~5 min
        await until(pilot, lambda: bar.state != "running" or bar.fraction >= 0.2, what="the bar moving")
        assert bar.state == "running" and 0.2 <= bar.fraction < 1.0
        # stop watching: the operation goes on in the cloud, and the page says so
        await pilot.click("#cl-stop")
        await until(pilot, lambda: not page._busy, what="the follow to stop")
        assert "keeps running in Google Cloud" in rendered(second.query_one("#cl-status"))
        assert state_of(second, 2) == "in_progress"
    ops = world.state()["operations"]
    assert [o["type"] for o in ops] == ["CREATE_CLUSTER"], "nothing created twice"


@pytest.mark.asyncio
async def test_too_small_pool_offers_a_confirmed_resize(make_sim_world, tmp_path):
    world = make_sim_world("two-nodes")
    app = make_app(world, tmp_path, 2)
    async with running(app) as pilot:
        page = await plan_loaded(pilot)
        plan = rendered(app.query_one("#cl-plan", Static))
        assert "exists" in plan and "2 of 3 TPU nodes" in plan
        assert "Resize node pool tpu-pool from 2 to 3 node(s)" in plan
        resize = app.query_one("#cl-resize", Button)
        assert resize.has_class("-shown") and "Resize tpu-pool to 3" in str(resize.label)
        assert not app.query_one("#cl-create", Button).has_class("-shown")
        await until(pilot, lambda: app.query_one("#cl-nodes", DataTable).row_count == 2, what="the two nodes")
        await pilot.click("#cl-resize")
        modal = await confirm_cost(pilot)
        assert "tpu-pool: 2 → 3" in modal
        # the zone cannot give a third node: said plainly, with other zones
        await until(pilot, lambda: app.query_one("#cl-error").has_class("-shown") and not page._busy,
                    what="the resize outcome")
        assert "us-east5-a" in rendered(app.query_one("#cl-error", Static))
        ops = [o["type"] for o in world.state()["operations"]]
        assert "SET_NODE_POOL_SIZE" in ops


# --- step 3 ---------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_secret_files_are_validated_with_the_exact_problem(make_sim_world, tmp_path):
    world = make_sim_world("cluster-ready")
    placeholder = tmp_path / "hf-placeholder.yaml"
    placeholder.write_text("apiVersion: v1\nkind: Secret\nmetadata:\n  name: huggingface-token\ntype: Opaque\n"
                           "stringData:\n  token: YOUR_HF_TOKEN_HERE\n")
    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: v1\nkind: Secret\nmetadata: [oops\n")
    pull = tmp_path / "pull.yaml"
    auth = base64.b64encode(f"{USER}:{PW_CANARY}".encode()).decode()
    pull.write_text("apiVersion: v1\nkind: Secret\nmetadata:\n  name: rhaiis-pull-secret\n"
                    "type: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: "
                    f"'{{\"auths\": {{\"registry.redhat.io\": {{\"auth\": \"{auth}\"}}}}}}'\n")
    app = make_app(world, tmp_path, 3)
    async with running(app) as pilot:
        page = app.current_page
        await until(pilot, lambda: page._cluster_running, what="the cluster read")
        hf_form = app.query_one("#sc-hf", SecretForm)
        msg = hf_form.query_one(".secret-msg", Static)
        for path, needle in ((placeholder, "still holds the template placeholder YOUR_HF_TOKEN_HERE"),
                             (broken, "is not valid YAML"),
                             (pull, "holds rhaiis-pull-secret (kubernetes.io/dockerconfigjson), "
                                    "not huggingface-token")):
            hf_form.set_file(path)
            await until(pilot, lambda: needle in rendered(msg), what=needle)
            assert hf_form.spec is None and hf_form.has_class("-problem")
        pull_form = app.query_one("#sc-pull", SecretForm)
        pull_form.set_file(pull)
        await until(pilot, lambda: pull_form.spec is not None, what="the pull secret file accepted")
        # the page's preview follows the form's change
        preview_widget = app.query_one("#sc-preview", Static)
        await until(pilot, lambda: f"from {pull}" in rendered(preview_widget), what="the preview of the file")
        preview = rendered(preview_widget)
        assert "Still to enter: huggingface-token" in preview
        assert PW_CANARY not in preview and auth not in preview


@pytest.mark.asyncio
async def test_canary_token_typed_in_the_form_never_leaves_memory_and_the_cluster(make_sim_world, tmp_path,
                                                                                  monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kube" / "config"))
    world = make_sim_world("cluster-ready", state_dir=tmp_path / "world")
    log_file = tmp_path / "logs" / "run.log"
    log_file.parent.mkdir()
    handler = logging.FileHandler(log_file)
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    screens: list[str] = []
    try:
        app = make_app(world, tmp_path, 3)
        async with running(app) as pilot:
            page = app.current_page
            await until(pilot, lambda: page._cluster_running, what="the cluster read")
            await type_into(pilot, "#hf-token", HF_CANARY[:12])
            await pilot.pause()
            hint = rendered(app.query_one("#sc-hf .secret-msg", Static))
            assert "has 9 after 'hf_'" in hint  # the shape, checked as you type
            await type_into(pilot, "#hf-token", HF_CANARY[12:])
            await type_into(pilot, "#pull-user", USER)
            await type_into(pilot, "#pull-password", PW_CANARY)
            await pilot.pause()
            screens.append(app.export_screenshot())
            screens.append(screen_text(app))
            await pilot.press("ctrl+s")
            await until(pilot, lambda: state_of(app, 3) == "done", what="the secrets applied")
            await pilot.pause()
            assert app.query_one("#hf-token", Input).value == "" and app.query_one("#pull-password", Input).value == ""
            # both secrets are in the cluster now: nothing left to create or to enter
            preview_widget = app.query_one("#sc-preview", Static)
            await until(pilot, lambda: "Nothing to create" in rendered(preview_widget), what="the preview after apply")
            assert "Still to enter" not in rendered(preview_widget)
            screens.append(app.export_screenshot())
            screens.append(screen_text(app))
            screens += [str(n.message) + str(n.title) for n in app._notifications]
            # step 1 and 2 pages too (the secrets check, the kubeconfig button)
            app.goto_step(2)
            await plan_loaded(pilot)
            await until(pilot, lambda: app.query_one("#cl-kube-box").has_class("-shown"), what="the kubeconfig row")
            app.query_one("#cl-kube-write").scroll_visible(animate=False)  # below the progress rows: scroll
            await pilot.pause()
            await pilot.click("#cl-kube-write")
            await until(pilot, lambda: "written to" in rendered(app.query_one("#cl-kube-msg", Static)),
                        what="the kubeconfig written")
            app.goto_step(1)
            await checks_done(pilot)
            assert app.query_one(Checklist).status("secrets") == "pass"
            screens.append(app.export_screenshot())
            screens += [str(n.message) + str(n.title) for n in app._notifications]
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()
    # the cluster holds the token (so it was really sent)...
    from rhaii_tui.steps.context import StepContext

    ctx = StepContext(DeployConfig(project=world.endpoints["project"]), world.profile())
    secret = ctx.kube().core.read_namespaced_secret("huggingface-token", "rhaii-inference")
    assert base64.b64decode(secret.data["token"]).decode() == HF_CANARY
    # ...and nothing else does: no file the wizard or the emulator wrote, apart from the emulator's
    # own cluster storage (state.json), no screen, no notification
    needles = [HF_CANARY, PW_CANARY, base64.b64encode(HF_CANARY.encode()).decode(),
               base64.b64encode(f"{USER}:{PW_CANARY}".encode()).decode()]
    world.stop()  # flush what the emulator writes
    written = files_under(tmp_path, exclude=(tmp_path / "world" / "state.json",))
    assert log_file.stat().st_size > 0
    assert any(p.parent.name == "targets" for p in written), "the state file was written"
    kubeconfig = tmp_path / "kube" / "config"
    assert kubeconfig in written and stat.S_IMODE(os.stat(kubeconfig).st_mode) == 0o600
    for p in written:
        text = p.read_bytes().decode("utf-8", "replace")
        for n in needles:
            assert n not in text, f"a secret value leaked into {p}"
    for shot in screens:
        for n in needles:
            assert n not in shot, "a secret value reached the screen"


# --- the whole walk -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_walk_steps_1_to_3_on_a_fresh_project(make_sim_world, tmp_path):
    world = make_sim_world("fresh")
    app = make_app(world, tmp_path, 1)
    async with running(app) as pilot:
        # step 1: every check passes except the secrets (entered in step 3)
        checklist = await checks_done(pilot)
        assert {cid: checklist.status(cid) for cid in checklist.ids} == {
            **{cid: "pass" for cid in PASS_ROWS}, "secrets": "warn"}
        assert "Signed in as demo-user@example.com" in checklist.row_text("credentials")
        assert "On-demand limit 32 chips  ✔ enough" in rendered(app.query_one(QuotaPane))
        assert state_of(app, 1) == "done"

        # step 2: the plan, the confirmation, the progress, the nodes
        await pilot.press("right_square_bracket")
        page = await plan_loaded(pilot)
        plan = rendered(app.query_one("#cl-plan", Static))
        assert f"Create cluster {CLUSTER} in europe-west4-a" in plan
        assert "Create node pool tpu-pool: 3 x ct6e-standard-4t" in plan
        assert "Cost: ≈ $376.80/day" in plan
        assert not world.state()["clusters"], "nothing is created before the confirmation"
        await pilot.click("#cl-create")
        modal = await confirm_cost(pilot)
        assert "$376.80/day" in modal and "Create cluster rhaii-tpu-scaleout-cluster" in modal
        # started: the page is busy, or (a loaded machine can keep the test from looking for the
        # few seconds it takes) the emulator already has the creations
        await until(pilot, lambda: page._busy or world.state()["operations"], what="the creation to start")
        # leave and come back while it runs: it keeps going
        app.goto_step(1)
        await pilot.pause(0.1)
        app.goto_step(2)
        await until(pilot, lambda: state_of(app, 2) == "done", timeout=30, what="the cluster and nodes Ready")
        await until(pilot, lambda: not page._busy and not page._loading, what="the final read")
        await pilot.pause()
        table = app.query_one("#cl-nodes", DataTable)
        assert table.row_count == 3
        for key in table.rows:
            row = table.get_row(key)
            assert row[1] == "✔ Ready" and row[2] == "europe-west4-a" and "tpu-v6e-slice 2x2" in row[3]
        assert all(bar.state == "done" for bar in app.query(PhaseProgress))
        assert not app.query_one("#cl-reattached").has_class("-shown")
        assert "RUNNING, 3/3 TPU v6e nodes Ready" in rendered(app.current_page.query_one(".step-state", Static))

        # step 3: the form, the preview without values, apply, both present
        await pilot.press("right_square_bracket")
        page = app.current_page
        await until(pilot, lambda: page._cluster_running, what="step 3's cluster read")
        await type_into(pilot, "#hf-token", HF_CANARY)
        await type_into(pilot, "#pull-user", USER)
        await type_into(pilot, "#pull-password", PW_CANARY)
        await pilot.pause()
        preview = rendered(app.query_one("#sc-preview", Static))
        assert "Secret rhaiis-pull-secret (kubernetes.io/dockerconfigjson)" in preview
        assert f"Secret huggingface-token (Opaque): token <hidden, {len(HF_CANARY)} characters>" in preview
        assert HF_CANARY not in preview and PW_CANARY not in preview
        app.query_one("#sc-apply").scroll_visible(animate=False)
        await pilot.pause()
        await pilot.click("#sc-apply")
        await until(pilot, lambda: state_of(app, 3) == "done", what="the secrets applied")
        await pilot.pause()
        cluster_box = rendered(app.query_one("#sc-cluster", Static))
        assert "✔ rhaiis-pull-secret  present (kubernetes.io/dockerconfigjson" in cluster_box
        assert "✔ huggingface-token  present (Opaque, key token)" in cluster_box
        # applying again is harmless (idempotent)
        app.query_one("#sc-apply", Button).focus()
        await pilot.press("ctrl+s")
        await until(pilot, lambda: not page._applying and "Applied" in rendered(app.query_one("#sc-status")),
                    what="the second apply")
        assert state_of(app, 3) == "done"
    ops = sorted(o["type"] for o in world.state()["operations"])
    assert ops == ["CREATE_CLUSTER", "CREATE_NODE_POOL"]


# --- snapshots --------------------------------------------------------------------------------------
# Deterministic: the emulator's fixed project and identity, no operation run (no clocks, no ages),
# focus on the sidebar (no blinking cursor), no notifications.


def _snap_app(world, tmp_path, step):
    return make_app(world, tmp_path, step)


def test_snapshot_step1_checklist(snap_compare, sim_world, tmp_path):
    async def checks(pilot):
        await pilot.app.start_page_ready.wait()
        await checks_done(pilot)

    assert snap_compare(_snap_app(sim_world, tmp_path, 1), terminal_size=SIZE, run_before=checks)


def test_snapshot_step2_plan(snap_compare, sim_world, tmp_path):
    async def plan(pilot):
        await pilot.app.start_page_ready.wait()
        await plan_loaded(pilot)

    assert snap_compare(_snap_app(sim_world, tmp_path, 2), terminal_size=SIZE, run_before=plan)


def test_snapshot_step3_forms(snap_compare, make_sim_world, tmp_path):
    world = make_sim_world("cluster-ready")

    async def read(pilot):
        await pilot.app.start_page_ready.wait()
        page = pilot.app.current_page
        await until(pilot, lambda: page._cluster_running and pilot.app.step_states.get(3) is not None,
                    what="the cluster read")
        await pilot.pause()

    assert snap_compare(_snap_app(world, tmp_path, 3), terminal_size=SIZE, run_before=read)


@pytest.mark.asyncio
async def test_an_operation_bar_follows_time_and_says_why_it_is_past_the_estimate():
    from textual.app import App

    from rhaii_tui.cloud.gke import OperationInfo

    class BarApp(App):
        def compose(self):
            yield PhaseProgress("Control plane", 300, id="bar")

    op = OperationInfo(name="operation-1", op_type="CREATE_CLUSTER", status="RUNNING", target="", location="")
    app = BarApp()
    async with app.run_test(size=(120, 10)) as pilot:
        bar = app.query_one(PhaseProgress)
        bar.follow_operation(op, 269.0, "creating")      # 4m29s of ~5 min: not 0%
        await pilot.pause()
        assert 0.85 < bar.fraction < 0.95 and bar.why_text() == ""
        assert not bar.query_one(".phase-why").has_class("-shown")
        bar.follow_operation(op, 400.0, "creating")      # past the estimate: capped, and says why
        await pilot.pause()
        assert bar.fraction == 0.95
        why = "longer than the guide's ~5 min: GKE is still creating the control plane " \
              "(this happens; the operation is RUNNING)"
        assert bar.why_text() == why and bar.query_one(".phase-why").has_class("-shown")
        assert why in str(bar.query_one(".phase-why").render())
        bar.finish("done")                               # done: full, and nothing more to explain
        await pilot.pause()
        assert bar.fraction == 1.0 and not bar.query_one(".phase-why").has_class("-shown")


@pytest.mark.asyncio
async def test_step_2_main_action_has_a_key_that_works_at_80x24(make_sim_world, tmp_path):
    """A: the step's main action (here: create), even when its button is below the fold."""
    world = make_sim_world("fresh")
    app = make_app(world, tmp_path, 2)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.start_page_ready.wait()
        page = await plan_loaded(pilot)
        assert page._plan is not None and page._plan.creates_cluster
        app.query_one("#sidebar").focus()  # the page's keys work from the sidebar too
        await pilot.pause()
        await pilot.press("A")
        await until(pilot, lambda: isinstance(app.screen, ConfirmCost) and app.screen.is_mounted, what="the create confirmation")
        assert "Create the GKE cluster" in app.screen.confirm_title
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, ConfirmCost), what="the confirmation closed")
        assert not page._busy
