"""SVG snapshots of steps 6-8 at 120x40.

Deterministic: no connection (profile None: nothing probes, nothing polls the cluster), fixed data
fed through the pages' own render paths — EPP pods (fixed names and timestamps) through a PodTable
as the rollout's row diffs, EnvoyFilters rendered for this service plus one edited to point at a
renamed service, reachability reports computed from the rendered NetworkPolicies (plus a policy
that cuts the gateway off) — and fixed step states.
Update deliberately with: python -m pytest tests/test_screens_6_8_snapshots.py --snapshot-update
"""

from __future__ import annotations

import json

import pytest

from rhaii_tui import manifests as m
from rhaii_tui.app import RhaiiApp
from rhaii_tui.config import GATEWAY_NAMESPACE, DeployConfig
from rhaii_tui.steps import envoyfilters as ef
from rhaii_tui.steps import epp, netpol
from rhaii_tui.steps.base import Status, StepState
from rhaii_tui.steps.podlife import PodTable

SIZE = (120, 40)
T0 = 1_800_000_000.0
NS, SVC = "rhaii-inference", "qwen-3b-tpu-svc"
DEP = f"{SVC}-kserve-router-scheduler"


@pytest.fixture(autouse=True)
def screens_6_8_registered():
    from rhaii_tui.screens import register_step_screen
    from rhaii_tui.screens.envoyfilters import EnvoyFiltersScreen
    from rhaii_tui.screens.epp_sidecar import EppSidecarScreen
    from rhaii_tui.screens.netpol import NetpolScreen

    for number, cls in ((6, EppSidecarScreen), (7, EnvoyFiltersScreen), (8, NetpolScreen)):
        register_step_screen(number)(cls)


def fixed_cfg() -> DeployConfig:
    cfg = DeployConfig(project="demo-project-01", zone="europe-west4-a", namespace=NS, replicas=3)
    cfg.sources = {name: "default" for name in cfg.to_dict()}
    return cfg


def app_at(step: int) -> RhaiiApp:
    app = RhaiiApp(fixed_cfg(), start_step=step)
    app.animation_level = "none"  # the tabs' underline would be caught mid-slide
    return app


async def page_ready(pilot):
    await pilot.app.start_page_ready.wait()
    await pilot.pause()


def ts(offset: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(T0 + offset, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def epp_pod(suffix: str, *, sidecar: bool, proxy_ready: bool = True, terminating: bool = False) -> dict:
    containers = [{"name": "main"}] + ([{"name": "istio-proxy"}] if sidecar else [])
    statuses = [{"name": "main", "ready": True, "restartCount": 0, "state": {"running": {"startedAt": ts(-60)}}}]
    if sidecar:
        statuses.append({"name": "istio-proxy", "ready": proxy_ready, "restartCount": 0,
                         "state": {"running": {"startedAt": ts(-8)}}})
    meta = {"name": f"{DEP}-{suffix}", "namespace": NS, "uid": f"uid-{suffix}", "creationTimestamp": ts(-900)}
    if terminating:
        meta.update(deletionTimestamp=ts(20), deletionGracePeriodSeconds=30)
    ready = all(s["ready"] for s in statuses)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"containers": containers, "nodeName": "gke-rhaii-default-pool-1a2b3c4d-x9k2"},
            "status": {"phase": "Running", "containerStatuses": statuses,
                       "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": ts(-898)},
                                      {"type": "Ready", "status": "True" if ready else "False",
                                       "lastTransitionTime": ts(-10)}]}}


def show_pods(page, pods: list[dict]) -> None:
    from rhaii_tui.screens.epp_sidecar import EppPodTable

    table = PodTable(clock=lambda: T0)
    diffs = table.resync(pods)
    widget = page.query_one(EppPodTable)
    widget.apply_diffs(diffs)
    widget.set_sidecars([e.to_dict() for e in epp.epp_pods(pods, now=T0)], NS)


# --- step 6 --------------------------------------------------------------------------------------------


def test_step_6_not_connected(snap_compare):
    assert snap_compare(app_at(6), terminal_size=SIZE, run_before=page_ready)


def test_step_6_rollout_old_pod_terminating_new_pod_starting(snap_compare):
    async def run_before(pilot):
        await page_ready(pilot)
        app, page = pilot.app, pilot.app.current_page
        pods = [epp_pod("7c66d4d87d-9gllb", sidecar=False, terminating=True),
                epp_pod("f95fd57c7-kb2ql", sidecar=True, proxy_ready=False)]
        app.set_step_state(6, epp.assess(fixed_cfg(), {"spec": {"template": {"metadata": {"labels": {
            epp.INJECT_LABEL: "true"}}}}}, pods, now=T0))
        show_pods(page, pods)
        page.query_one("#epp-label").update(page._label_content(True))
        page.show_follow("◐ following the rollout · 4s · old pod terminating, new pod starting", "$warning")
        await pilot.pause()

    assert snap_compare(app_at(6), terminal_size=SIZE, run_before=run_before)


def test_step_6_rollout_timed_out_with_its_diagnosis(snap_compare):
    async def run_before(pilot):
        await page_ready(pilot)
        app, page = pilot.app, pilot.app.current_page
        pods = [epp_pod("f95fd57c7-kb2ql", sidecar=False)]
        d = epp.diagnose_rollout(fixed_cfg(), epp.epp_pods(pods, now=T0), waited=180.0)
        state = StepState(Status.FAILED, d.title, detail=d.text(), fix=d.fix, data={"diagnosis": d.to_dict()})
        app.set_step_state(6, state)
        show_pods(page, pods)
        page.query_one("#epp-label").update(page._label_content(True))
        page.action_error = state
        page.show_follow("✘ " + state.summary, "bold $error")
        page.query_one("DiagnosisPanel").show([d.to_dict()])
        await pilot.pause()

    assert snap_compare(app_at(6), terminal_size=SIZE, run_before=run_before)


# --- step 7 --------------------------------------------------------------------------------------------


def test_step_7_not_connected(snap_compare):
    assert snap_compare(app_at(7), terminal_size=SIZE, run_before=page_ready)


def test_step_7_filter_pointing_at_a_renamed_service_is_flagged(snap_compare):
    async def run_before(pilot):
        await page_ready(pilot)
        cfg = fixed_cfg()
        filters = ef.rendered(cfg)
        ours = m.envoyfilter_names(SVC)["ext_proc"]
        filters = [json.loads(json.dumps(f).replace(f"{SVC}-epp-service", "qwen-renamed-epp-service"))
                   if f["metadata"]["name"] == ours else f for f in filters]
        rows = ef.filter_rows(filters, cfg, live_epp_services=[m.epp_service_name(SVC)],
                              live_routes=[m.route_name(SVC)])
        pilot.app.current_page.show_rows(rows)
        await pilot.pause()

    assert snap_compare(app_at(7), terminal_size=SIZE, run_before=run_before)


# --- step 8 --------------------------------------------------------------------------------------------


def test_step_8_before_the_choice(snap_compare):
    assert snap_compare(app_at(8), terminal_size=SIZE, run_before=page_ready)


def test_step_8_applied_shows_the_isolation(snap_compare):
    async def run_before(pilot):
        await page_ready(pilot)
        cfg = fixed_cfg()
        page = pilot.app.current_page
        page.show_state(StepState(Status.DONE, "All 4 NetworkPolicies present; the gateway reaches vLLM and the EPP.",
                                  data={"choice": "apply", "present": list(m.NETWORK_POLICY_NAMES)}))
        page.show_report("live", netpol.report(netpol.rendered(cfg), cfg))
        page.query_one("#np-tabs").active = "np-tab-live"
        await pilot.pause()

    assert snap_compare(app_at(8), terminal_size=SIZE, run_before=run_before)


def test_step_8_preview_says_the_gateway_would_be_cut_off(snap_compare):
    async def run_before(pilot):
        await page_ready(pilot)
        cfg = fixed_cfg()
        deny = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": "gateway-deny-egress", "namespace": GATEWAY_NAMESPACE},
                "spec": {"podSelector": {"matchLabels": m.gateway_pod_labels()}, "policyTypes": ["Egress"]}}
        page = pilot.app.current_page
        page.show_report("preview", netpol.report(netpol.rendered(cfg) + [deny], cfg))
        page.query_one("#np-tabs").active = "np-tab-preview"
        await pilot.pause()

    assert snap_compare(app_at(8), terminal_size=SIZE, run_before=run_before)


def test_step_8_live_on_a_cluster_that_does_not_enforce_them(snap_compare):
    async def run_before(pilot):
        await page_ready(pilot)
        cfg = fixed_cfg()
        page = pilot.app.current_page
        unenforced = netpol.Enforcement(False, cluster=cfg.cluster)
        page.show_report("live", netpol.report(netpol.rendered(cfg), cfg, enforced=unenforced, live=True))
        page.query_one("#np-tabs").active = "np-tab-live"
        await pilot.pause()

    assert snap_compare(app_at(8), terminal_size=SIZE, run_before=run_before)


def test_step_8_live_shows_what_the_probe_pods_saw_next_to_the_intent(snap_compare):
    async def run_before(pilot):
        await page_ready(pilot)
        cfg = fixed_cfg()
        page = pilot.app.current_page
        seen = {
            "gw-vllm": netpol.Observation("gw-vllm", "gateway-labelled pod in opendatahub -> vLLM:8000",
                                          "opendatahub", "rhaii-probe-gw-abc123", "10.8.1.10:8000", True, True,
                                          "10.8.1.10 (10.8.1.10:8000) open"),
            "otherns-vllm": netpol.Observation("otherns-vllm", "pod in a new namespace -> vLLM:8000",
                                               "rhaii-probe-abc123", "rhaii-probe-ns-abc123", "10.8.1.10:8000",
                                               False, True, "10.8.1.10 (10.8.1.10:8000) open"),
            "samens-vllm": netpol.Observation("samens-vllm", "other pod in rhaii-inference -> vLLM:8000",
                                              "rhaii-inference", "rhaii-probe-same-abc123", "10.8.1.10:8000",
                                              False, False, "nc: 10.8.1.10 (10.8.1.10:8000): Connection timed out"),
        }
        enforced = netpol.Enforcement(True, "GKE Dataplane V2", cfg.cluster)
        rep = netpol.with_observations(netpol.report(netpol.rendered(cfg), cfg, enforced=enforced, live=True), seen)
        page.show_report("live", rep)
        page.query_one("#np-tabs").active = "np-tab-live"
        await pilot.pause()

    assert snap_compare(app_at(8), terminal_size=SIZE, run_before=run_before)
