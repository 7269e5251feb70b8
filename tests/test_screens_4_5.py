"""Steps 4 and 5 on screen, against the simulated cloud: what a user sees, scenario by scenario.

Each test gets its own world (cluster-ready or a failure scenario), builds the wizard on it and
drives it with Pilot: the operators installed with the page's Install button, the service applied
with the Apply button, then the pod table, the diagnosis panel, the milestones and the log pane
are read as they are shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time

import pytest
from textual.widgets import Button, Label, TabbedContent

from rhaii_tui.app import RhaiiApp
from rhaii_tui.config import DeployConfig, StateStore
from rhaii_tui.screens.deploy import DeployScreen
from rhaii_tui.screens.operators import OperatorsScreen
from rhaii_tui.secrets import hf_secret_from_form, pull_secret_from_form
from rhaii_tui.steps import operators as ops
from rhaii_tui.steps import secrets as secrets_step
from rhaii_tui.steps.base import Status
from rhaii_tui.steps.epp import epp_selector
from rhaii_tui.steps.deploy import workload_selector
from rhaii_tui.widgets.diagnosis import DiagnosisPanel
from rhaii_tui.widgets.log_pane import LogPane
from rhaii_tui.widgets.milestones import MilestoneChecklist
from rhaii_tui.widgets.operator_status import OperatorStatusTable
from rhaii_tui.widgets.pod_table import PodTableWidget

from pilothelpers import until

SIZE = (120, 40)
SPEED = 2000


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch):
    monkeypatch.setattr(OperatorsScreen, "CRD_INTERVAL", 0.2)
    monkeypatch.setattr(OperatorsScreen, "RETRY_SECONDS", 0.3)
    monkeypatch.setattr(DeployScreen, "RETRY_SECONDS", 0.3)


def make_app(world, tmp_path, start_step: int, **cfg) -> RhaiiApp:
    values = dict(project=world.endpoints["project"], replicas=3)
    values.update(cfg)
    return RhaiiApp(DeployConfig(**values), profile=world.profile(), state_store=StateStore(tmp_path / "state"),
                    start_step=start_step)


@contextlib.asynccontextmanager
async def running(app: RhaiiApp):
    async with app.run_test(size=SIZE) as pilot:
        await app.start_page_ready.wait()
        yield pilot




def logs_text(pane: LogPane) -> str:
    return "\n".join(pane.shown_lines)


def status(app: RhaiiApp, n: int) -> str:
    st = app.step_states.get(n)
    return str(st.status) if st is not None else ""


async def page_live(pilot, app: RhaiiApp, number: int):
    page = app.page_widget(number)
    await until(pilot, lambda: page is not None and page.live is not None, what=f"step {number}'s watches")
    await pilot.pause(0.2)  # the first render settled (the state line may have grown)
    return page


async def press(pilot, app: RhaiiApp, selector: str) -> None:
    """Press one of the page's buttons (as a click would; no race with the layout settling)."""
    button = app.current_page.query_one(selector, Button)
    assert not button.disabled
    button.press()
    await pilot.pause()


def add_secrets(ctx) -> None:
    secrets_step.ensure_namespace(ctx)
    ctx.secrets.add(hf_secret_from_form("hf_" + "x" * 34))
    ctx.secrets.add(pull_secret_from_form("someone", "not-a-real-password"))
    secrets_step.apply_secrets(ctx)


def operators_ready(ctx) -> None:
    """Step 4 done without the UI (for the step-5 scenario tests)."""
    ops.install(ctx)
    deadline = time.monotonic() + 20
    while ops.probe(ctx).status is not Status.DONE:
        assert time.monotonic() < deadline, "operators never became ready"
        time.sleep(0.05)


def cluster_pod_keys(ctx) -> set[str]:
    """What the cluster holds: workload and EPP pods ('namespace/name'), not terminating."""
    session = ctx.kube()
    ns = ctx.cfg.namespace
    keys = set()
    for sel in (workload_selector(ctx.cfg), epp_selector(ctx.cfg)):
        for p in session.list("v1", "Pod", ns, label_selector=sel):
            if not p["metadata"].get("deletionTimestamp"):
                keys.add(f"{ns}/{p['metadata']['name']}")
    return keys


# --- step 4 then step 5, fresh to ready -----------------------------------------------------------


@pytest.mark.asyncio
async def test_fresh_cluster_to_three_ready_replicas_through_both_screens(make_sim_world, tmp_path, caplog):
    world = make_sim_world("cluster-ready", speed=SPEED)
    app = make_app(world, tmp_path, 4)
    async with running(app) as pilot:
        page = await page_live(pilot, app, 4)
        table = page.query_one(OperatorStatusTable)
        await until(pilot, lambda: table.shown_text("cert-manager", "state") == "○ waiting"
                    and status(app, 4) == "not_started", what="step 4's first reading")
        await press(pilot, app, "#op-install")
        await until(pilot, lambda: status(app, 4) == "done", what="step 4 done")
        await pilot.pause(0.2)
        for key in ("cert-manager", "istiod", "kserve", "lws", "gateway"):
            assert table.shown_text(key, "state") == "✔ ready", key
            ready, total = table.shown_text(key, "pods").split("/")
            assert ready == total and int(total) >= 1
        assert table.shown_text("gateway", "detail").startswith("address ")
        assert all(table.shown_text(f"crd:{c.key}", "state") == "✔ ready" for c in ops.CRDS)
        assert "simulated rhaii-on-xks installer" in "\n".join(page.query_one(LogPane).shown_lines)
        assert "● live" in str(page.query_one("#op-watch", Label).render())

        await asyncio.to_thread(add_secrets, app.step_context())
        app.goto_step(5)
        page = await page_live(pilot, app, 5)
        await press(pilot, app, "#dp-apply")
        await until(pilot, lambda: status(app, 5) == "done", what="step 5 done")
        pods = page.query_one(PodTableWidget)

        # the step's assessment and the table's row updates are applied separately: wait for the rows
        def rows_running() -> bool:
            keys = pods.row_keys()
            return (len(keys) == 4 and all(pods.shown_text(k, "stage") == "Running 1/1" for k in keys)
                    and all(pods.shown_text(k, "ready") == "1/1" for k in keys[:3]))

        await until(pilot, rows_running, what="3 ready workload rows and the EPP row, all Running 1/1")
        labels = [pods.shown_text(k, "label") for k in pods.row_keys()]
        assert labels == ["r1", "r2", "r3", "EPP"]
        nodes = {pods.model(k)["node"] for k in pods.row_keys()[:3]}
        assert len(nodes) == 3  # one TPU node per replica
        ctx = app.step_context()
        assert set(pods.row_keys()) == await asyncio.to_thread(cluster_pod_keys, ctx)
        assert "Ready: 3/3 pods 1/1 on 3 TPU nodes" in app.step_states[5].summary
        # milestones per pod, from the logs: the download line, the five vLLM milestones, the KV cache
        checklist = page.query_one(MilestoneChecklist)
        # (the download comes from the storage-initializer's log, a stream of its own)
        await until(pilot, lambda: checklist.text.count("✔ XLA compilation done") == 3
                    and checklist.text.count("✔ model downloaded") == 3
                    and checklist.text.count(" tokens (TPU)") == 3, what="milestones")
        # logs of all pods, prefixed by replica, from both containers
        page.action_show_tab("dp-tab-logs")
        pane = page.query_one(LogPane)
        # the two containers' lines come as separate streams: wait for both, as a user would
        await until(pilot, lambda: "r1 main│ " in logs_text(pane)
                    and "Successfully copied hf://Qwen/Qwen2.5-3B-Instruct" in logs_text(pane),
                    what="log lines of the model download and of the main container")
        shown = logs_text(pane)
        assert "hf_xxxx" not in shown  # the secret never reaches the screen
        # applying again changes nothing and the page stays done
        await press(pilot, app, "#dp-apply")
        await pilot.pause(0.5)
        assert status(app, 5) == "done" and len(pods.row_keys()) == 4
        # every stream and watch of the page kept its connection (none discarded and reopened)
        assert not [r for r in caplog.records if "Connection pool is full" in r.getMessage()]


# --- stuck pods: the guide's diagnosis on screen ----------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("scenario,knobs,words,blocking", [
    ("bad-hf-token", {"start_state": "cluster-ready"},
     ["Hugging Face rejected the token", "storage-initializer:", "huggingface-token"], True),
    ("bad-pull-secret", {"start_state": "cluster-ready"},
     ["cannot be pulled from registry.redhat.io", "rhaiis-pull-secret", "ImagePullBackOff"], True),
    ("two-nodes", {},
     ["2 TPU node(s) for 3 replicas", "TPU v6e nodes: 2 Ready of 2",
      "gcloud container clusters resize rhaii-tpu-scaleout-cluster --node-pool tpu-pool --num-nodes 3"], True),
    ("slow-compile", {"start_state": "cluster-ready", "compile_factor": 200.0},
     ["is still starting: vLLM is compiling for the TPU", "Nothing is wrong yet",
      "Compiling the model with different input shapes"], False),
])
async def test_stuck_pods_show_the_guides_diagnosis(make_sim_world, tmp_path, scenario, knobs, words, blocking):
    world = make_sim_world(scenario, speed=SPEED, **knobs)
    app = make_app(world, tmp_path, 5)
    async with running(app) as pilot:
        ctx = app.step_context()
        await asyncio.to_thread(operators_ready, ctx)
        await asyncio.to_thread(add_secrets, ctx)
        page = await page_live(pilot, app, 5)
        await press(pilot, app, "#dp-apply")
        panel = page.query_one(DiagnosisPanel)
        await until(pilot, lambda: all(w in panel.text for w in words), timeout=20,
                    what=f"the {scenario} diagnosis")
        tabs = page.query_one("#dp-tabs", TabbedContent)
        if blocking:
            # an error: the step fails with the fix, and the diagnosis tab comes forward by itself
            await until(pilot, lambda: status(app, 5) == "failed", what="step 5 failed")
            assert app.step_states[5].fix
            assert tabs.active == "dp-tab-diag"
        else:
            # slow, not broken: the page says so on its state line; the diagnosis is one key away
            assert status(app, 5) == "in_progress"
            assert "compiling" in app.step_states[5].summary
            page.action_show_tab("dp-tab-diag")
        # shown at the next screen update after the tab changed
        await until(pilot, lambda: panel.is_on_screen, what="the diagnosis panel on screen")
        assert "Diagnosis (" in str(tabs.get_tab("dp-tab-diag").label)


# --- a flaky API: watches drop and re-list mid-deploy -----------------------------------------------


@pytest.mark.asyncio
async def test_dropped_watches_leave_the_pod_table_exact(make_sim_world, tmp_path):
    world = make_sim_world("flaky-api", speed=SPEED, start_state="cluster-ready",
                           flaky={"error_rate": 0.1, "watch_drop_seconds": 0.25, "expire_once": True,
                                  "google_error_rate": 0.0})
    app = make_app(world, tmp_path, 5)
    faults = world.sim().faults
    faults.error_rate = 0.0  # steps 3-4 done quickly; the faults are for the deploy
    async with running(app) as pilot:
        ctx = app.step_context()
        await asyncio.to_thread(operators_ready, ctx)
        await asyncio.to_thread(add_secrets, ctx)
        page = await page_live(pilot, app, 5)
        faults.error_rate = 0.1
        await press(pilot, app, "#dp-apply")
        pods = page.query_one(PodTableWidget)
        # as after an etcd compaction, over and over: for 0.4 s every resumed watch gets 410 Expired
        # (the client retries once by itself, then the ListWatcher must re-list); watches are also cut
        # every 0.25 s and 10% of the other requests fail
        compaction = {"until": 0.0}
        own_take_expire = faults.take_expire
        faults.take_expire = lambda: time.monotonic() < compaction["until"] or own_take_expire()

        async def compactions() -> None:
            while True:
                compaction["until"] = time.monotonic() + 0.4
                await asyncio.sleep(0.7)

        churn = asyncio.create_task(compactions())
        deadline = time.monotonic() + 30
        while status(app, 5) != "done":
            assert time.monotonic() < deadline, "step 5 never done despite the flaky API"
            keys = pods.row_keys()
            assert len(keys) == len(set(keys)), keys  # never a duplicated row
            await pilot.pause(0.1)

        async def table_matches_cluster() -> bool:
            want = await asyncio.to_thread(cluster_pod_keys, ctx)
            keys = pods.row_keys()
            return len(keys) == len(set(keys)) and set(keys) == want

        async def until_table_matches_cluster(what: str) -> None:
            # the table follows the cluster through watches that keep dropping: it catches up
            deadline = time.monotonic() + 20
            while not await table_matches_cluster():
                assert time.monotonic() < deadline, (what, pods.row_keys(),
                                                     await asyncio.to_thread(cluster_pod_keys, ctx))
                await pilot.pause(0.1)

        await until(pilot, lambda: len(pods.row_keys()) == 4, what="4 rows")
        await until_table_matches_cluster("the rows of the deployed pods")
        # replace a replica while watches keep dropping: its row goes, the new pod's row comes
        victim = pods.row_keys()[1]
        ns, name = victim.split("/")
        await asyncio.to_thread(lambda: ctx.kube().delete("v1", "Pod", name, ns))
        await until(pilot, lambda: victim not in pods.row_keys() and len(pods.row_keys()) == 4, timeout=20,
                    what="the deleted pod's row replaced")
        await until_table_matches_cluster("the replaced pod's row")
        labels = [pods.shown_text(k, "label") for k in pods.row_keys()]
        assert len(set(labels)) == 4 and labels[-1] == "EPP"  # the new pod got a label of its own
        # the pod watches really were cut and re-listed (not one long happy stream), and after that
        # the table still matches the cluster
        # (the page's watch of now: after the apply it restarts its watch if the service's was backing off)
        def relisted() -> bool:
            live = page.live
            return live is not None and live.dw._watchers["pods"].lists >= 2 and live._epp.lists >= 2

        await until(pilot, relisted, timeout=15, what="both pod watches re-listed")
        await until_table_matches_cluster("the rows after the re-lists")
        churn.cancel()


# --- the upstream installer (the path a real cluster takes) -------------------------------------------


class LocalInstallerProfile:
    """The simulated cloud, except that installing the operators runs the upstream installer from a
    checkout, as the real profile does (`ConnectionProfile.install_operators`)."""

    @staticmethod
    def wrap(profile):
        from rhaii_tui.cloud.profile import ConnectionProfile

        profile.install_operators = lambda key, installer_dir=None: ConnectionProfile.install_operators(
            profile, key, installer_dir)
        return profile


@pytest.mark.asyncio
async def test_install_asks_for_a_checkout_then_streams_the_installers_output(make_sim_world, tmp_path,
                                                                                monkeypatch):
    # a stand-in for `make` in the checkout: prints like the installer, shows it got its own kubeconfig
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_make = bin_dir / "make"
    fake_make.write_text("#!/bin/sh\n"
                         "echo \"make $1 in $(pwd)\"\n"
                         "for c in cert-manager sail-operator kserve lws; do echo \"helmfile apply: $c\"; done\n"
                         "test -f \"$KUBECONFIG\" && echo \"kubeconfig ok\"\n"
                         "echo 'Error: simulated failure' >&2; exit 3\n")
    fake_make.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{__import__('os').environ['PATH']}")
    checkout = tmp_path / "rhaii-on-xks"
    checkout.mkdir()
    world = make_sim_world("cluster-ready", speed=SPEED)
    app = RhaiiApp(DeployConfig(project=world.endpoints["project"], replicas=3),
                   profile=LocalInstallerProfile.wrap(world.profile()), state_store=StateStore(tmp_path / "s"),
                   start_step=4)
    async with running(app) as pilot:
        page = await page_live(pilot, app, 4)
        pane = page.query_one("#op-log", LogPane)
        # no checkout given: the page says what it needs and puts the cursor there
        await press(pilot, app, "#op-install")
        await until(pilot, lambda: "rhaii-on-xks" in "\n".join(pane.shown_lines) and
                    app.focused is page.query_one("#op-checkout"), what="the checkout request")
        assert any("install failed" in line for line in pane.shown_lines)
        # a path that is not a directory is refused before anything runs
        page.query_one("#op-checkout").value = str(tmp_path / "nowhere")
        await press(pilot, app, "#op-install")
        await pilot.pause(0.1)
        assert not any("helmfile apply" in line for line in pane.shown_lines)
        # with the checkout, the installer runs there and its output (stdout and stderr) streams in
        page.query_one("#op-checkout").value = str(checkout)
        await press(pilot, app, "#op-install")
        # the exit line is streamed before the page learns the installer ended: wait for both
        await until(pilot, lambda: any("exited with code 3" in line for line in pane.shown_lines)
                    and str(page.query_one("#op-install", Button).label) == "Install operators",
                    what="the installer's end")
        shown = "\n".join(pane.shown_lines)
        assert f"make deploy-all in {checkout}" in shown
        assert shown.index("helmfile apply: cert-manager") < shown.index("helmfile apply: lws")
        assert "kubeconfig ok" in shown and "Error: simulated failure" in shown
        # the installer's end is a line of its own: exit code and how long it ran
        assert re.search(r"^installer failed: exit 3 after \d+s$", shown, re.M), shown


def test_troubleshooting_follows_the_rows_and_watch_states_read_plainly():
    from rhaii_tui.screens.operators import troubleshooting_diagnoses, watch_state_summary
    from test_screens_4_5_fixtures import operators_view

    diags = {d.cause: d for d in troubleshooting_diagnoses(operators_view())}
    assert set(diags) == {"operator-pods", "gateway-address"}
    assert any("ImagePullBackOff" in e for e in diags["operator-pods"].evidence)
    assert diags["operator-pods"].severity == "error" and diags["gateway-address"].severity == "warning"
    assert "kubectl describe gateway inference-gateway -n opendatahub" in diags["gateway-address"].commands
    assert troubleshooting_diagnoses(operators_view(kserve_failing=False, gateway_address="10.0.0.7")) == []
    assert watch_state_summary({"pods": "live", "events": "live"})[0] == "● live (2 watches)"
    text, style = watch_state_summary({"pods": "reconnecting (attempt 2, 500: boom)", "events": "live"})
    assert text == "◌ pods: reconnecting (attempt 2, 500: boom)" and "warning" in style


@pytest.mark.asyncio
async def test_zoom_gives_the_focused_pane_the_whole_screen_and_back():
    app = RhaiiApp(DeployConfig(project="demo-project-01"), start_step=5)
    async with running(app) as pilot:
        page = app.current_page
        page.query_one("#dp-log", LogPane).query_one("Log").focus()
        await pilot.press("f")
        assert app.screen.maximized is page.query_one("#dp-log", LogPane)
        await pilot.press("f")
        assert app.screen.maximized is None
        page.query_one(PodTableWidget).focus()
        await pilot.press("f")
        assert app.screen.maximized is page.query_one(PodTableWidget)


@pytest.mark.asyncio
async def test_zoom_with_nothing_focused_zooms_the_main_pane_and_a_zoomed_table_fills_the_screen():
    app = RhaiiApp(DeployConfig(project="demo-project-01"), start_step=5)
    async with running(app) as pilot:
        page = app.current_page
        app.query_one("#sidebar").focus()
        await pilot.pause()
        page.action_zoom()
        await pilot.pause()
        assert app.screen.maximized is not None and page in app.screen.maximized.ancestors
        page.action_zoom()
        await pilot.pause()
        table = page.query_one(PodTableWidget)
        table.focus()
        await pilot.press("f")
        await pilot.pause()
        assert app.screen.maximized is table
        # the table takes the screen's height (less the footer), not the height of its few rows
        assert table.region.height >= app.screen.size.height - 2, (table.region, app.screen.size)
