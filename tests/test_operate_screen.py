"""The Operate page (12): a Pilot walk on the emulator (status shown, a scale through ConfirmCost,
cancelled then confirmed) and a deterministic snapshot at 120x40 (a fixed status)."""

from __future__ import annotations

import asyncio

import pytest
from textual.widgets import Input, Log

from rhaii_tui.app import RhaiiApp
from rhaii_tui.config import DeployConfig, StateStore
from rhaii_tui.screens.operate import OperateScreen, cost_hint
from rhaii_tui.steps import operate
from rhaii_tui.widgets.confirm_cost import ConfirmCost
from rhaii_tui.widgets.operate_status import OpsStatusPane
from rhaii_tui.widgets.operate_tables import OpsPodTable
from rhaii_tui.widgets.target_header import HeaderBar, TargetHeader
from rhaii_tui.widgets.transcript_view import TranscriptPanel

SIZE = (120, 40)


async def until(pilot, predicate, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("timed out waiting in the app")
        await pilot.pause(0.05)


def test_operate_page_shows_the_status_and_scales_through_confirm_cost(make_sim_world, tmp_path):
    world = make_sim_world("deployed")
    cfg = DeployConfig(project=world.endpoints["project"], replicas=3)
    app = RhaiiApp(cfg, profile=world.profile(), state_store=StateStore(tmp_path / "state"), start_step=12)

    async def walk() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await app.start_page_ready.wait()
            page = app.current_page
            assert isinstance(page, OperateScreen)
            await until(pilot, lambda: page.status is not None and page.status.replicas_ready == 3)
            text = page.query_one(OpsStatusPane).text
            assert "3 Ready of 3 desired" in text and "3 Ready of 3" in text and "≈ $376.80/day" in text
            assert page.query_one(OpsPodTable).row_count == 3
            assert app.step_states[12].status.value == "done"
            # the header's cost meter (read every minute; here at once): spent so far while a cluster exists
            header = app.query_one(TargetHeader)
            header.refresh_spend()
            bar = header.query_one(HeaderBar)
            await until(pilot, lambda: "spent" in bar.spend)
            assert "≈ $376.80/day" in bar.spend and "spent" in str(bar.render())

            page.query_one("#ops-replicas", Input).value = "4"
            hint = page.query_one("#ops-hint")
            await until(pilot, lambda: "Scale to 4" in str(hint.render()))    # once the input's change is handled
            assert "$500.40/day" in str(hint.render())

            page.query_one("#ops-scale").press()                     # first: cancel
            await until(pilot, lambda: isinstance(app.screen, ConfirmCost) and app.screen.is_mounted)
            assert app.screen.cost_per_day == pytest.approx(500.40)
            assert any("Grow node pool tpu-pool from 3 to 4" in line for line in app.screen.lines)
            await pilot.press("escape")
            # the answer reaches the page after the dialog has gone
            await until(pilot, lambda: "cancelled, nothing changed" in "\n".join(page.query_one(Log).lines))
            assert not isinstance(app.screen, ConfirmCost)
            assert page.result is None

            page.query_one("#ops-scale").press()                     # then: type the cluster name
            await until(pilot, lambda: isinstance(app.screen, ConfirmCost) and app.screen.query("#confirm"))  # composed, not just pushed
            confirm = app.screen
            confirm.query_one("#confirm-input", Input).value = cfg.cluster
            button = confirm.query_one("#confirm")
            await until(pilot, lambda: not button.disabled)      # enabled once the typed name is checked
            button.press()
            await until(pilot, lambda: page.result is not None, timeout=30)
            assert page.result.ok, (page.result.summary, page.result.fix)
            await until(pilot, lambda: page.status.replicas_ready == 4 and page.status.pool_nodes == 4)
            log = "\n".join(page.query_one(Log).lines)
            assert "Resizing node pool tpu-pool to 4" in log and "4 replica(s) Ready on 4 TPU node(s)" in log
            assert app.cfg.replicas == 4                               # the config follows the cluster
            # the Transcript panel shows the changes live: the resize, with its gcloud command and the page
            panel = page.query_one(TranscriptPanel)
            await until(pilot, lambda: any(e["command"].startswith(f"gcloud container clusters resize {cfg.cluster} "
                                                                   "--node-pool tpu-pool --num-nodes 4")
                                           for e in panel.entries))
            resize = next(e for e in panel.entries if "--num-nodes 4" in e["command"])
            assert resize["ok"] and resize["step"].startswith("12.")
            assert any(e["command"].startswith("kubectl ") and e["step"].startswith("12.") for e in panel.entries)
            assert "gcloud container clusters resize" in "\n".join(panel.query_one(Log).lines)

    asyncio.run(walk())


# --- snapshot -------------------------------------------------------------------------------------


class SimProfile:
    simulated = True
    label = "Simulated cloud"


def fixed_status() -> operate.OpsStatus:
    st = operate.OpsStatus("demo-project-01", "europe-west4-a", "rhaii-tpu-scaleout-cluster", "rhaii-inference",
                           "qwen-3b-tpu-svc", 5.15, cluster_status="RUNNING", pool_exists=True, pool_status="RUNNING",
                           pool_nodes=3, tpu_nodes_ready=3, exists=True, llmisvc_ready=True, replicas_desired=3,
                           replicas_ready=3, image="registry.redhat.io/rhaiis/vllm-tpu-rhel9:3.2.5",
                           images_running={"registry.redhat.io/rhaiis/vllm-tpu-rhel9:3.2.5": 3},
                           prefix_caching=True, gateway_address="34.90.12.7")
    for i, (suffix, node) in enumerate((("abcde", "a1b2"), ("fghij", "c3d4"), ("klmno", "e5f6"))):
        name = f"qwen-3b-tpu-svc-kserve-6d9f8-{suffix}"
        st.pods.append(operate.PodRow(name, "Running 1/1", True, f"gke-rhaii-tpu-pool-{node}", st.image or "", 0,
                                      "-", "ok"))
        st.raw_pods.append(ready_pod(name, f"gke-rhaii-tpu-pool-{node}", st.image or "", i))
    return st


def ready_pod(name: str, node: str, image: str, i: int) -> dict:
    t = f"2026-01-01T00:0{i}:00Z"
    return {
        "metadata": {"name": name, "namespace": "rhaii-inference", "uid": f"uid-{i}", "creationTimestamp": t},
        "spec": {"nodeName": node, "containers": [{"name": "main", "image": image}],
                 "initContainers": [{"name": "storage-initializer", "image": "kserve/storage-initializer"}]},
        "status": {"phase": "Running",
                   "conditions": [{"type": t_, "status": "True", "lastTransitionTime": t}
                                  for t_ in ("PodScheduled", "Initialized", "ContainersReady", "Ready")],
                   "initContainerStatuses": [{"name": "storage-initializer", "ready": True, "restartCount": 0,
                                              "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                                                                       "startedAt": t, "finishedAt": t}}}],
                   "containerStatuses": [{"name": "main", "ready": True, "restartCount": 0, "image": image,
                                          "state": {"running": {"startedAt": t}}}]},
    }


def operate_app(monkeypatch) -> RhaiiApp:
    monkeypatch.setattr(operate, "read_status", lambda ctx, **kw: fixed_status())
    cfg = DeployConfig(project="demo-project-01", zone="europe-west4-a", replicas=3)
    cfg.sources = {name: "default" for name in cfg.to_dict()}
    return RhaiiApp(cfg, profile=SimProfile(), start_step=12)


def test_operate_screen_snapshot(snap_compare, monkeypatch):
    async def ready(pilot):
        await pilot.app.start_page_ready.wait()
        page = pilot.app.current_page
        await until(pilot, lambda: page.status is not None)
        await pilot.pause()

    assert snap_compare(operate_app(monkeypatch), terminal_size=SIZE, run_before=ready)


def test_cost_hint_names_the_cost_now_and_after():
    st = fixed_status()
    assert cost_hint(st, "5") == "Scale to 5: ≈ $376.80/day now → ≈ $624.00/day (5 TPU node(s), 20 chips)"
    assert "scale to zero ≈ $6.00/day" in cost_hint(st) and "delete the cluster $0/day" in cost_hint(st)
    assert cost_hint(None) == ""
    assert cost_hint(st, "3") == "Already 3 replica(s) on 3 TPU node(s) (≈ $376.80/day): nothing to change"


def pending_pod(name: str, image: str, created: float) -> dict:
    from datetime import datetime, timezone

    t = datetime.fromtimestamp(created, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "metadata": {"name": name, "namespace": "rhaii-inference", "uid": f"uid-{name}", "creationTimestamp": t},
        "spec": {"containers": [{"name": "main", "image": image}]},
        "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                                                       "reason": "Unschedulable", "lastTransitionTime": t}]},
    }


def test_pending_pods_at_zero_wait_for_the_pool_and_ready_pods_show_no_time_in_stage():
    import time

    from textual.app import App

    image = "registry.redhat.io/rhaiis/vllm-tpu-rhel9:3.2.5"

    class TableApp(App):
        def compose(self):
            yield OpsPodTable(id="t")

    async def walk() -> None:
        app = TableApp()
        async with app.run_test(size=SIZE) as pilot:
            table = app.query_one(OpsPodTable)
            pods = [pending_pod("svc-kserve-1-aaaaa", image, time.time() - 14 * 60),
                    ready_pod("svc-kserve-1-bbbbb", "gke-rhaii-tpu-pool-a1b2", image, 1)]
            table.show(pods, prefix="svc-kserve-1-")
            await pilot.pause()
            pending, ready = "rhaii-inference/svc-kserve-1-aaaaa", "rhaii-inference/svc-kserve-1-bbbbb"
            # with TPU nodes, 14 min Pending is late against the guide's 1-5 min
            assert table.shown_text(pending, "in_stage").startswith("14m") and "(1-5m)" in table.shown_text(
                pending, "in_stage")
            assert table.shown_text(ready, "in_stage") == "-"
            # with the pool at zero it is not late: it waits for a TPU node that only a resume brings
            table.show(pods, prefix="svc-kserve-1-", pool_at_zero=True)
            await pilot.pause()
            assert table.shown_text(pending, "in_stage") == "pool at 0"
            assert table.shown_text(pending, "stage") == "Pending" and table._shown[pending]["stage"][1] == ""
            assert table.shown_text(ready, "in_stage") == "-"
            table.show(pods, prefix="svc-kserve-1-")   # resumed: judged against the guide again
            await pilot.pause()
            assert "(1-5m)" in table.shown_text(pending, "in_stage")

    asyncio.run(walk())


def test_at_80x24_every_operate_button_shows_its_whole_label(monkeypatch):
    from textual.widgets import Button

    async def walk() -> None:
        app = operate_app(monkeypatch)
        async with app.run_test(size=(80, 24)) as pilot:
            await app.start_page_ready.wait()
            page = app.current_page
            await until(pilot, lambda: page.status is not None)
            for row in page.query(".ops-row"):
                if not row.display or row.region.width == 0:
                    continue  # the migration rows are folded away
                row.scroll_visible(animate=False)
                await pilot.pause()
                right = row.content_region.right
                for button in row.query(Button):
                    label = str(button.label)
                    assert button.region.width >= len(label) + 2, (label, button.region)
                    assert button.region.right <= right, (label, button.region, right)

    asyncio.run(walk())
