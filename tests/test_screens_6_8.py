"""Steps 6-8 on screen, against the simulated cloud: what a user sees, from the `partial` world.

Each test gets its own world (steps 1-5 done, serving without cache-aware routing), builds the
wizard on it and drives it with Pilot: the EPP patched and followed to 2/2, the EnvoyFilters
applied and listed with their targets (a renamed service caught), NetworkPolicies chosen (skip
remembered across apps; apply shows the isolation; a policy that cuts the gateway off is said
before and after). A second app on the same world reads the pages right.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import pytest
from textual.widgets import Button, Input, TabbedContent

from rhaii_tui import manifests as m
from rhaii_tui.app import RhaiiApp
from rhaii_tui.config import GATEWAY_NAMESPACE, DeployConfig, StateStore
from rhaii_tui.screens.envoyfilters import EnvoyFiltersScreen
from rhaii_tui.screens.epp_sidecar import EppPodTable, EppSidecarScreen
from rhaii_tui.screens.netpol import TAB_CRITERIA, TAB_LIVE, NetpolScreen
from rhaii_tui.steps import envoyfilters as ef
from rhaii_tui.widgets.diagnosis import DiagnosisPanel
from rhaii_tui.widgets.reachability import ReachabilityPanel
from rhaii_tui.widgets.step_list import StepList

from pilothelpers import until

SIZE = (120, 40)
SPEED = 2000


@pytest.fixture(autouse=True)
def screens_6_8(monkeypatch):
    """Pages 6-8 are ours even if another test swapped the registry; quick polls."""
    from rhaii_tui.screens import register_step_screen

    for number, cls in ((6, EppSidecarScreen), (7, EnvoyFiltersScreen), (8, NetpolScreen)):
        register_step_screen(number)(cls)
        monkeypatch.setattr(cls, "POLL_SECONDS", 0.2)


def make_app(world, state_dir, start_step: int, **cfg) -> RhaiiApp:
    values = dict(project=world.endpoints["project"])
    values.update(cfg)
    return RhaiiApp(DeployConfig(**values), profile=world.profile(), state_store=StateStore(state_dir),
                    start_step=start_step)


@contextlib.asynccontextmanager
async def running(app: RhaiiApp):
    async with app.run_test(size=SIZE) as pilot:
        await app.start_page_ready.wait()
        yield pilot




def status(app: RhaiiApp, n: int) -> str:
    st = app.step_states.get(n)
    return str(st.status) if st is not None else ""


async def probed(pilot, app: RhaiiApp, number: int):
    """Show page `number` and wait for its first read of the cluster."""
    if app.current_step != number:
        app.goto_step(number)
    await until(pilot, lambda: app.page_widget(number) is not None and app.page_widget(number).probes > 0,
                what=f"step {number}'s probe")
    await pilot.pause(0.1)
    return app.page_widget(number)


async def press(pilot, app: RhaiiApp, selector: str) -> None:
    button = app.current_page.query_one(selector, Button)
    assert not button.disabled, selector
    button.press()
    await pilot.pause()


def sidebar(app: RhaiiApp, n: int) -> str:
    return app.query_one(StepList).prompt_text(n)


# --- 6 -> 7 -> 8 from partial, then a second app on the same world ------------------------------------


@pytest.mark.asyncio
async def test_walk_6_7_8_from_partial_then_a_second_app_reads_them_done(make_sim_world, tmp_path):
    world = make_sim_world("partial", speed=SPEED)
    cfg_ns, svc = "rhaii-inference", "qwen-3b-tpu-svc"
    app = make_app(world, tmp_path / "state", 6)
    async with running(app) as pilot:
        # step 6: why, the EPP pod without its sidecar, then Patch -> followed live to 2/2
        page = await probed(pilot, app, 6)
        assert status(app, 6) == "not_started"
        assert "ext_proc call fails" in str(page.query_one("#epp-why").render())
        table = page.query_one(EppPodTable)
        [old] = table.row_keys()
        assert table.shown_text(old, "stage") == "Running 1/1" and table.shown_text(old, "sidecar") == "— none"
        await press(pilot, app, "#epp-patch")
        await until(pilot, lambda: status(app, 6) == "done" and not page.busy, what="EPP 2/2")
        assert "Ready 2/2 with istio-proxy" in app.step_states[6].summary
        assert page.follow_text.startswith("✔ Patch applied; the rollout finished in") and "Ready 2/2" in page.follow_text
        # the next reads of the cluster keep saying what the Patch did (not "nothing to do")
        probes = page.probes
        await until(pilot, lambda: page.probes >= probes + 2, what="two more probes")
        assert page.follow_text.startswith("✔ Patch applied") and "nothing to do" not in page.follow_text
        # the pane showed both pods: the old one (no sidecar) going away, the new one reaching 2/2
        assert len(table.seen) == 2 and table.seen[old][0] == "Running 1/1"
        new = next(k for k in table.seen if k != old)
        assert table.seen[new][-1] == "Running 2/2" and len(table.seen[new]) >= 2
        await until(pilot, lambda: table.row_keys() == [new], what="the old pod gone from the table")
        assert table.shown_text(new, "ready") == "2/2" and table.shown_text(new, "sidecar") == "✔ injected"
        assert "✔ set" in str(page.query_one("#epp-label").render())
        assert "✔" in sidebar(app, 6)

        # step 7: the three filters applied, each listed with its target
        page = await probed(pilot, app, 7)
        assert status(app, 7) == "not_started" and page.list_text.count("○ ") == 3
        await press(pilot, app, "#ef-apply")
        await until(pilot, lambda: status(app, 7) == "done" and not page.busy, what="filters applied")
        names = m.envoyfilter_names(svc)
        for key in ("mtls", "ext_proc"):
            assert page.row(names[key]).state == "ok"
            assert f"✔ {names[key]}" in page.list_text
        assert f"→ {svc}-epp-service.{cfg_ns}:9002" in page.list_text
        assert f"→ {cfg_ns}.{svc}-kserve-route.{{0,1}}" in page.list_text
        assert "✔ 3/3 present" in str(page.query_one("#ef-status").render())

        # step 8: apply -> the live table shows the isolation
        page = await probed(pilot, app, 8)
        assert status(app, 8) == "not_started"
        preview = page.query_one("#np-preview", ReachabilityPanel)
        assert "Nothing the deployment needs would break" in preview.headline_text
        live = page.query_one("#np-live", ReachabilityPanel)
        assert live.result_of("otherns-vllm") == "⚠ allowed"  # nothing isolated yet
        await press(pilot, app, "#np-apply")
        await until(pilot, lambda: status(app, 8) == "done" and not page.busy, what="policies applied")
        assert page.query_one("#np-tabs", TabbedContent).active == TAB_LIVE
        assert live.result_of("gw-vllm") == "✔ allowed"
        assert live.result_of("otherns-vllm") == "✔ denied" and live.result_of("samens-vllm") == "✔ denied"
        assert live.result_of("gw-epp") == "✔ allowed" and live.result_of("vllm-https") == "✔ allowed"
        assert "Isolation in place" in live.headline_text
        assert "vLLM :8000 is reachable from: gateway, kubelet probes, EPP (metrics)" in live.headline_text

    # a second wizard on the same world and state: the probes read 6, 7 and 8 as done
    again = make_app(world, tmp_path / "state", 6)
    async with running(again) as pilot:
        page = await probed(pilot, again, 6)
        await until(pilot, lambda: status(again, 6) == "done", what="step 6 done on re-open")
        assert [page.query_one(EppPodTable).shown_text(k, "stage") for k in page.query_one(EppPodTable).row_keys()] \
            == ["Running 2/2"]
        await probed(pilot, again, 7)
        await until(pilot, lambda: status(again, 7) == "done", what="step 7 done on re-open")
        page = await probed(pilot, again, 8)
        await until(pilot, lambda: status(again, 8) == "done", what="step 8 done on re-open")
        assert page.query_one("#np-live", ReachabilityPanel).result_of("otherns-vllm") == "✔ denied"
        assert all("✔" in sidebar(again, n) for n in (6, 7, 8))


# --- step 8: skip is remembered ------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_netpol_skip_shows_skipped_and_a_new_app_remembers_it(make_sim_world, tmp_path):
    world = make_sim_world("partial", speed=SPEED)
    app = make_app(world, tmp_path / "state", 8)
    async with running(app) as pilot:
        page = await probed(pilot, app, 8)
        assert page.query_one("#np-tabs", TabbedContent).active == TAB_CRITERIA  # before a choice: the criteria
        assert "Single-purpose cluster (no other workloads)" in str(page.query_one("#np-crit-skip").render())
        assert "Compliance requirements (SOC2, HIPAA, PCI-DSS)" in str(page.query_one("#np-crit-apply").render())
        await press(pilot, app, "#np-skip")
        await until(pilot, lambda: status(app, 8) == "skipped" and not page.busy, what="skipped")
        assert "⊘" in sidebar(app, 8)
        assert "skip (PoC)" in str(page.query_one("#np-choice").render())
        # skipping shows what that means (nothing isolates vLLM) once the page has read the cluster again
        live = page.query_one("#np-live", ReachabilityPanel)
        await until(pilot, lambda: page.query_one("#np-tabs", TabbedContent).active == TAB_LIVE
                    and "every pod in the cluster can reach vLLM" in live.headline_text, what="the live tab")

    again = make_app(world, tmp_path / "state", 8)
    async with running(again) as pilot:
        await probed(pilot, again, 8)
        await until(pilot, lambda: status(again, 8) == "skipped", what="skipped on re-open")
        assert "⊘" in sidebar(again, 8)
        assert "skipped by choice" in again.step_states[8].summary


# --- step 7: a renamed service is caught ---------------------------------------------------------------


@pytest.mark.asyncio
async def test_envoyfilter_pointing_at_another_epp_service_is_flagged_with_the_fix(make_sim_world, tmp_path):
    world = make_sim_world("partial", speed=SPEED)
    app = make_app(world, tmp_path / "state", 7)
    async with running(app) as pilot:
        page = await probed(pilot, app, 7)
        await press(pilot, app, "#ef-apply")
        await until(pilot, lambda: status(app, 7) == "done" and not page.busy, what="filters applied")
        ctx = app.step_context()
        ours = m.envoyfilter_names(ctx.cfg.service)

        # someone edits our ext_proc filter to point at a renamed service's EPP (via the kube API)
        def edit() -> None:
            obj = next(o for o in ef.rendered(ctx.cfg) if o["metadata"]["name"] == ours["ext_proc"])
            edited = json.loads(json.dumps(obj).replace("qwen-3b-tpu-svc-epp-service", "qwen-renamed-epp-service"))
            ctx.kube().apply(edited, GATEWAY_NAMESPACE)

        await asyncio.to_thread(edit)
        await until(pilot, lambda: status(app, 7) == "failed", what="the edited filter flagged")  # by the poll
        assert page.row(ours["ext_proc"]).state == "mismatch"
        assert f"✘ {ours['ext_proc']}  ext_proc cluster  wrong target" in page.list_text
        assert "→ qwen-renamed-epp-service.rhaii-inference:9002" in page.list_text
        assert "Fix: Apply again (A)" in page.list_text
        assert page.query(".ef-head.-mismatch")  # shown red
        assert "wrong EPP service" in str(page.query_one("#ef-status").render())
        await press(pilot, app, "#ef-apply")  # the fix
        await until(pilot, lambda: status(app, 7) == "done" and not page.busy, what="restored")

        # the filters of the service's old name, still lying in opendatahub
        def leftovers() -> None:
            for obj in ef.rendered(ctx.cfg.replace(service="qwen-old-svc")):
                ctx.kube().apply(obj, GATEWAY_NAMESPACE)

        await asyncio.to_thread(leftovers)
        await until(pilot, lambda: status(app, 7) == "failed", what="the leftover flagged")
        assert "qwen-old-svc-epp-service" in app.step_states[7].summary
        assert page.list_text.startswith("✘ qwen-old-svc-ext-proc")  # the red one first
        assert "$ kubectl delete envoyfilter qwen-old-svc-ext-proc -n opendatahub" in page.list_text


# --- step 6: a rollout that cannot finish ends with a diagnosis --------------------------------------------


@pytest.mark.asyncio
async def test_epp_rollout_without_istiod_times_out_with_a_diagnosis(make_sim_world, tmp_path, monkeypatch):
    monkeypatch.setattr(EppSidecarScreen, "ROLLOUT_TIMEOUT", 1.5)
    world = make_sim_world("partial", speed=SPEED)
    app = make_app(world, tmp_path / "state", 6)
    async with running(app) as pilot:
        page = await probed(pilot, app, 6)
        ctx = app.step_context()

        def stop_istiod() -> None:  # nothing can inject the sidecar any more
            session = ctx.kube()
            path = session.resource("apps/v1", "Deployment").path("istio-system", "istiod")
            session.request("PATCH", path, body={"spec": {"replicas": 0}},
                            content_type="application/merge-patch+json")
            deadline = time.monotonic() + 10
            while session.list("v1", "Pod", "istio-system", label_selector="app=istiod"):
                assert time.monotonic() < deadline
                time.sleep(0.05)

        await asyncio.to_thread(stop_istiod)
        started = time.monotonic()
        await press(pilot, app, "#epp-patch")
        await until(pilot, lambda: status(app, 6) == "failed" and not page.busy, what="the timeout")
        assert time.monotonic() - started < 10  # not a hang
        text = page.query_one(DiagnosisPanel).text
        assert "has no istio-proxy sidecar" in text and "istiod is running" in text
        assert "kubectl get pods -n istio-system -l app=istiod" in text
        assert page.follow_text.startswith("✘ ")
        assert not page.query_one("#epp-patch", Button).disabled
        await pilot.pause(0.5)  # polls keep the failure (and its diagnosis) on show
        assert status(app, 6) == "failed" and page.query_one(DiagnosisPanel).text == text


# --- step 8: a needed path that breaks is said before and after ------------------------------------------


@pytest.mark.asyncio
async def test_netpol_that_cuts_the_gateway_off_is_said_before_and_after(make_sim_world, tmp_path):
    world = make_sim_world("partial", speed=SPEED)
    app = make_app(world, tmp_path / "state", 8)
    async with running(app) as pilot:
        ctx = app.step_context()

        def lock_gateway() -> None:  # a default-deny egress for the gateway pods, applied by someone else
            ctx.kube().apply({
                "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": "gateway-deny-egress", "namespace": GATEWAY_NAMESPACE},
                "spec": {"podSelector": {"matchLabels": m.gateway_pod_labels()}, "policyTypes": ["Egress"]},
            }, GATEWAY_NAMESPACE)

        await asyncio.to_thread(lock_gateway)
        page = await probed(pilot, app, 8)
        preview = page.query_one("#np-preview", ReachabilityPanel)
        # ("Nothing the deployment needs would break" is the headline before the read: wait for the warning)
        await until(pilot, lambda: "the gateway can no longer reach vLLM" in preview.headline_text,
                    what="the preview's warning")
        assert preview.result_of("gw-vllm") == "✘ denied"
        # Apply asks first: type the namespace to apply anyway
        await press(pilot, app, "#np-apply")
        modal = await until(pilot, lambda: app.screen if app.screen.query("#confirm-input") else None,
                            what="the confirmation")
        assert "the gateway can no longer reach vLLM" in str(modal.query_one("#confirm-lines").render())
        modal.query_one("#confirm-input", Input).value = "rhaii-inference"
        confirm = modal.query_one("#confirm", Button)
        await until(pilot, lambda: not confirm.disabled, what="the confirm button enabled")
        confirm.press()
        await until(pilot, lambda: status(app, 8) == "failed" and not page.busy, what="applied anyway")
        live = page.query_one("#np-live", ReachabilityPanel)
        assert "The live policies break the deployment" in live.headline_text
        assert "the gateway can no longer reach vLLM" in live.headline_text
        assert live.result_of("gw-vllm") == "✘ denied"
        assert "the gateway can no longer reach vLLM" in app.step_states[8].summary


@pytest.mark.asyncio
async def test_netpol_test_live_shows_what_probe_pods_saw(make_sim_world, tmp_path):
    world = make_sim_world("deployed", speed=SPEED)
    app = make_app(world, tmp_path / "state", 8)
    async with running(app) as pilot:
        page = await probed(pilot, app, 8)
        await press(pilot, app, "#np-test")
        live = page.query_one("#np-live", ReachabilityPanel)
        await until(pilot, lambda: "Seen on the cluster" in live.headline_text and not page.busy,
                    what="the probe pods' results", timeout=60)
        assert "3/3 probe pods as intended" in live.headline_text
        assert live.table.shown_text("gw-vllm", "seen") == "✔ connected"
        assert live.table.shown_text("otherns-vllm", "seen") == "✔ blocked"


@pytest.mark.asyncio
async def test_netpol_on_a_cluster_that_does_not_enforce_asks_before_storing(make_sim_world, tmp_path):
    world = make_sim_world("partial", speed=SPEED, dataplane_v2=False)
    app = make_app(world, tmp_path / "state", 8)
    async with running(app) as pilot:
        page = await probed(pilot, app, 8)
        await until(pilot, lambda: "does not enforce" in str(page.query_one("#np-verdict").render()),
                    what="the enforcement warning before applying")
        await press(pilot, app, "#np-apply")
        modal = await until(pilot, lambda: app.screen if app.screen.query("#confirm-input") else None,
                            what="the confirmation")
        lines = str(modal.query_one("#confirm-lines").render())
        assert "--enable-network-policy" in lines and "--enable-dataplane-v2" in lines
        modal.query_one("#confirm-input", Input).value = "rhaii-inference"
        confirm = modal.query_one("#confirm", Button)
        await until(pilot, lambda: not confirm.disabled, what="the confirm button enabled")
        confirm.press()
        await until(pilot, lambda: status(app, 8) == "failed" and not page.busy, what="stored anyway")
        live = page.query_one("#np-live", ReachabilityPanel)
        assert "Not isolated" in live.headline_text and "Isolation in place" not in live.headline_text
        assert "NOT isolated" in app.step_states[8].summary


# --- not connected ------------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("step,button", [(6, "#epp-patch"), (7, "#ef-apply"), (8, "#np-apply"), (8, "#np-skip")])
async def test_actions_without_a_connection_say_so(step, button):
    app = RhaiiApp(DeployConfig(project="demo-project-01"), start_step=step)
    async with running(app) as pilot:
        await pilot.pause()
        await press(pilot, app, button)
        await pilot.pause()
        assert any("Not connected" in (n.title or "") for n in app._notifications)
        assert status(app, step) in ("", "not_started")  # nothing changed


# --- errors: a clear message with the fix --------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("step,button,words", [
    (6, "#epp-patch", "Could not patch the EPP deployment: Cluster no-such-cluster does not exist"),
    (7, "#ef-apply", "Could not apply the EnvoyFilters: Cluster no-such-cluster does not exist"),
    (8, "#np-apply", "Could not apply the NetworkPolicies: Cluster no-such-cluster does not exist"),
])
async def test_an_action_on_a_missing_cluster_says_what_to_do(make_sim_world, tmp_path, step, button, words):
    world = make_sim_world("partial", speed=SPEED)
    app = make_app(world, tmp_path / "state", step, cluster="no-such-cluster")
    async with running(app) as pilot:
        page = await probed(pilot, app, step)
        assert status(app, step) == "not_started" and "not ready yet" in app.step_states[step].summary
        await press(pilot, app, button)
        await until(pilot, lambda: status(app, step) == "failed" and not page.busy, what="the failure")
        state = app.step_states[step]
        assert state.summary.startswith(words) and "Create it in step 2" in state.fix
        assert not page.query_one(button, Button).disabled  # the user can try again
        await pilot.pause(0.5)  # the polls that follow keep the failure and its fix on show
        assert app.step_states[step] is state
