"""Steps 9-11 and the PoC report against the simulated cloud: what a user would see.

The emulator's data plane answers in real time (~80-200 ms per request), so request counts and
durations stay small here."""

from __future__ import annotations

import dataclasses
import os
import stat
import time
from pathlib import Path

import pytest

from rhaii_tui import manifests as m
from rhaii_tui.config import GATEWAY_NAMESPACE, DeployConfig, StateStore
from rhaii_tui.loadtest.cache_proof import MSG_CACHING_OFF, MSG_ROUTING
from rhaii_tui.report import build_report_from_run, run_checks, write_report
from rhaii_tui.secrets import SecretsInput, hf_secret_from_form, pull_secret_from_form
from rhaii_tui.steps import identity, performance, verify
from rhaii_tui.steps.base import Status
from rhaii_tui.steps.context import StepContext
from simhelpers import roomy_data_plane, slow_gateway_warm_up

PROJECT = "rhaii-demo-project"
ZONE = "europe-west4-a"
SPEED = 2000
HF_CANARY = "hf_" + "Zq9CanaryHfTok" * 3
PW_CANARY = "Canary-Registry-Pa55word-4412"

# short runs: the proof plus two throughput windows of a couple of seconds
PERF = performance.PerfOptions(modes=("closed", "serial"), duration_s=1.0, warmup_s=0.3, seed=11)
PROOF_ONLY = performance.PerfOptions(modes=(), seed=11)


def make_ctx(world, tmp_path: Path, **kw) -> StepContext:
    cfg = DeployConfig(project=PROJECT, zone=ZONE, cluster="rhaii-tpu-scaleout-cluster", replicas=3)
    return StepContext(cfg, world.profile(), StateStore(tmp_path / "state"), **kw)


def poll(fn, until, timeout=20.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        res = fn()
        if until(res) or time.monotonic() > deadline:
            return res
        time.sleep(interval)


@pytest.mark.parametrize("version,kserve_group,other_group", [
    ("3.4.0-ea.1", "inference.networking.x-k8s.io", "inference.networking.k8s.io"),
    ("3.4.0-ea.2", "inference.networking.k8s.io", "inference.networking.x-k8s.io")])
def test_verify_says_when_the_health_route_names_a_pool_group_kserve_did_not_use(
        make_sim_world, tmp_path, version, kserve_group, other_group):
    from rhaii_tui.steps import deploy

    world = make_sim_world("deployed", speed=SPEED, kserve_version=version)
    ctx = make_ctx(world, tmp_path)
    kube = ctx.kube()
    name = m.health_route_name(ctx.cfg.service)
    route = kube.get(m.HTTPROUTE_API_VERSION, "HTTPRoute", name, ctx.cfg.namespace)
    assert route["spec"]["rules"][0]["backendRefs"][0]["group"] == kserve_group  # the pool KServe created
    assert deploy.kserve_pool_group(kube, ctx.cfg) == kserve_group
    # a route written for the other KServe release: the gateway cannot resolve it
    kube.apply(m.health_route(ctx.cfg, pool_group=other_group), ctx.cfg.namespace)
    st = poll(lambda: verify.probe(ctx), lambda s: s.status is Status.FAILED, timeout=60)
    assert st.status is Status.FAILED, st
    bad = verify.first_failure([verify.CheckResult(**{k: v for k, v in c.items()}) for c in st.data["checks"]])
    assert bad.key == "route", st.data["checks"]
    pool = m.inference_pool_name(ctx.cfg.service)
    assert f"expects InferencePool {pool} in {other_group}" in bad.evidence
    assert f"KServe created InferencePool {pool} in {kserve_group}/" in bad.evidence
    assert "step 5" in bad.fix
    # step 5 again points it at the pool KServe created
    assert kserve_group in deploy.apply_health_route(ctx)
    st = poll(lambda: verify.probe(ctx), lambda s: s.status is Status.DONE, timeout=60)
    assert st.status is Status.DONE, st


def test_after_a_kserve_upgrade_steps_6_and_9_say_what_changed_and_reapplying_restores_both(
        make_sim_world, tmp_path):
    from rhaii_tui.steps import deploy, epp

    world = make_sim_world("deployed", speed=SPEED)
    ctx = make_ctx(world, tmp_path)
    assert verify.probe(ctx).status is Status.DONE and epp.probe(ctx).status is Status.DONE
    sim = world.sim()
    dt = sim.store.type_for("deployments", "apps")
    world.call(lambda: sim.store.mutate(dt, GATEWAY_NAMESPACE, "kserve-controller-manager", lambda d: d["metadata"]
                                        ["labels"].__setitem__("app.kubernetes.io/version", "3.4.0-ea.2")))
    # step 6: KServe's new template dropped the guide's label
    st = poll(lambda: epp.probe(ctx), lambda s: "was removed" in s.summary, timeout=60)
    assert "was removed" in st.summary and st.status is not Status.DONE, st
    # step 9: the health route still names the old release's pool group
    st = poll(lambda: verify.probe(ctx), lambda s: s.status is Status.FAILED, timeout=60)
    route = next(c for c in st.data["checks"] if c["key"] == "route")
    assert route["ok"] is False and "in inference.networking.x-k8s.io" in route["evidence"], route
    assert "KServe created InferencePool" in route["evidence"] and "inference.networking.k8s.io/v1" in route["evidence"]
    # step 6 and step 5 again
    assert epp.apply(ctx, timeout=30).status is Status.DONE
    assert "inference.networking.k8s.io" in deploy.apply_health_route(ctx)
    st = poll(lambda: verify.probe(ctx), lambda s: s.status is Status.DONE, timeout=60)
    assert st.status is Status.DONE, st


def test_the_probe_sends_a_completion_only_when_something_changed(make_sim_world, tmp_path, monkeypatch):
    """A wizard left open re-probes every 15 s: step 9's probe calls the service through the
    customer's gateway once (/health, /v1/models, a completion), then reuses those answers while the
    service, the gateway and the pods are the same; a change (here a pod's labels) calls again."""
    from rhaii_tui.cloud.inference import InferenceClient

    sent: list[str] = []
    for name in ("complete", "health"):
        real = getattr(InferenceClient, name)
        monkeypatch.setattr(InferenceClient, name,
                            lambda self, *a, _real=real, _name=name, **k: (sent.append(_name), _real(self, *a, **k))[1])
    world = make_sim_world("deployed", speed=SPEED)
    ctx = make_ctx(world, tmp_path)
    first = verify.probe(ctx)
    assert first.status is Status.DONE and sent.count("complete") == 1
    again = verify.probe(ctx)
    assert again.status is Status.DONE and sent.count("complete") == 1 and sent.count("health") == 1
    for key in ("health", "models", "completion"):
        reused = next(c for c in again.data["checks"] if c["key"] == key)
        assert "nothing changed since" in reused["evidence"], reused
    kube = ctx.kube()
    pod = verify.read_live(ctx, kube).ready_pods[0]
    pod["metadata"].setdefault("labels", {})["rhaii-test"] = "touched"
    kube.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod["metadata"]["name"],
                "namespace": ctx.cfg.namespace, "labels": pod["metadata"]["labels"]}}, ctx.cfg.namespace)
    assert verify.probe(ctx).status is Status.DONE and sent.count("complete") == 2 and sent.count("health") == 2


def test_deployed_scenario_passes_steps_9_to_11(make_sim_world, tmp_path):
    world = make_sim_world("deployed", speed=SPEED)
    ctx = make_ctx(world, tmp_path)
    assert performance.probe(ctx).status is Status.NOT_STARTED   # nothing proven yet for this deployment

    checks = verify.run_verify(ctx)
    assert verify.all_passed(checks), [(c.key, c.evidence) for c in checks if c.ok is not True]
    by = {c.key: c for c in checks}
    gw = verify.read_live(ctx).gateway_address
    assert gw and f"via gateway {gw}" in by["access"].evidence
    assert "3 of 3 Ready" in by["pods"].evidence
    assert "/mnt/models" in by["models"].evidence and by["completion"].text
    assert len([c for c in checks if c.key.startswith("replica:")]) == 3
    assert verify.probe(ctx).status is Status.DONE

    res = performance.run_performance(ctx, PERF)
    assert res.proof.passed, (res.proof.headline, res.proof.checks)
    assert res.proof.block_size_source == "metrics" and res.proof.hit_ratio >= 0.8
    assert [t.mode for t in res.throughput] == ["closed", "serial"]
    closed, serial = (t.result for t in res.throughput)
    assert closed.ok == closed.requests > 0 and serial.ok == serial.requests > 0
    assert closed.throughput <= 60, closed.throughput                # the emulator's calibrated ceiling
    # 10 in flight against one at a time (Little's law: in flight = throughput x latency). How many
    # requests a second that gives depends on the CPU left to the emulator in this process: on a
    # quiet machine 10-60 req/s, more than twice the serial run (BENCHMARKS.md, emulator data plane)
    def in_flight(r):
        return r.throughput * r.latency_ms.mean / 1000

    assert in_flight(closed) > 3 * in_flight(serial) and in_flight(serial) <= 1.05
    p99 = next(g for g in serial.guide if g.name == "P99 latency")
    assert p99.ok is None and "samples" in p99.note                  # too few samples for a P99
    # the cache proof decides, then each run's comparison with the guide's figures measured here
    assert res.passed is all(t.passed for t in res.throughput), res.headline
    assert performance.probe(ctx).status is Status.DONE

    ident = identity.run_identity(ctx)
    assert ident.passed, [(c.key, c.evidence) for c in ident.checks if c.ok is not True]
    assert len(ident.replicas) == 3
    for r in ident.replicas:
        assert r.prefix_flag and r.kv_cache_tokens and r.weights_seconds is not None
        assert "Qwen2.5-3B-Instruct" in (r.model_uri or r.model_in_log or "")
    assert identity.probe(ctx).status is Status.DONE


def test_latency_targets_are_judged_at_a_fixed_rate_not_at_saturation(make_sim_world, tmp_path):
    world = make_sim_world("deployed", speed=SPEED)
    ctx = make_ctx(world, tmp_path)
    opts = performance.PerfOptions(cache_proof=False, latency_only=False, modes=("closed", "open"), rate=25,
                                   duration_s=1.5, warmup_s=0.3, store=False)
    res = performance.run_performance(ctx, opts)
    closed, opened = (t.result for t in res.throughput)
    assert closed.ok == closed.requests > 0 and opened.ok == opened.requests > 0
    # 10 always in flight: latencies are saturation numbers; at 25 req/s the service is not saturated
    assert opened.achieved_rate >= 0.9 * opts.rate and opened.latency_ms.p50 < 200
    assert opened.latency_ms.p50 < closed.latency_ms.p50
    gating = {(g["run"], g["name"]): g["gating"] for g in res.guide_rows()}
    assert gating[(performance.mode_label("closed", opts), "P50 latency")] is False
    assert gating[(performance.mode_label("open", opts), "P50 latency")] is True
    assert performance.probe(ctx).status is Status.NOT_STARTED     # a throughput run proves no caching


def test_without_envoyfilters_the_proof_names_routing_while_the_latency_only_test_passes(make_sim_world, tmp_path):
    world = make_sim_world("deployed", speed=SPEED)
    slow_gateway_warm_up(world)
    ctx = make_ctx(world, tmp_path)
    kube = ctx.kube()
    for name in m.envoyfilter_names(ctx.cfg.service).values():
        assert kube.delete(m.ENVOYFILTER_API_VERSION, "EnvoyFilter", name, GATEWAY_NAMESPACE)
    res = performance.run_performance(ctx, PROOF_ONLY)
    # the guide's test would call it a cache hit...
    assert res.latency_only is not None and res.latency_only.says_cache_works, res.latency_only
    # ...the proof says what is wrong
    assert not res.passed and res.proof.status == "fail"
    assert "routing" in res.proof.failing and res.proof.headline == MSG_ROUTING
    assert "routing" in res.headline
    assert performance.probe(ctx).status is Status.NOT_STARTED


def test_with_prefix_caching_off_the_proof_names_caching(make_sim_world, tmp_path):
    world = make_sim_world("deployed", speed=SPEED)
    ctx = make_ctx(world, tmp_path)
    kube = ctx.kube()
    svc = kube.get(m.LLMISVC_API_VERSION, "LLMInferenceService", ctx.cfg.service, ctx.cfg.namespace)
    container = svc["spec"]["template"]["containers"][0]
    container["args"] = [a for a in container["args"] if a != "--enable-prefix-caching"]
    obj = {"apiVersion": m.LLMISVC_API_VERSION, "kind": "LLMInferenceService",
           "metadata": {"name": ctx.cfg.service, "namespace": ctx.cfg.namespace}}
    # a full TPU pool (one node per replica) has no room for a surge pod: a rolling update stalls,
    # so go through zero replicas, as a user would
    kube.apply({**obj, "spec": {**svc["spec"], "replicas": 0}})
    assert poll(lambda: not verify.read_live(ctx).pods, bool, timeout=20), "the old pods did not go away"
    kube.apply({**obj, "spec": {**svc["spec"], "replicas": 3}})

    def rolled():
        live = verify.read_live(ctx)
        ready = live.ready_pods
        return len(ready) == 3 and len(live.pods) == 3 and not any(
            identity.has_prefix_flag(identity.container_words(verify.main_container(p))) for p in ready)
    assert poll(rolled, bool, timeout=30), "the pods did not roll to the new spec"

    res = performance.run_performance(ctx, PROOF_ONLY)
    assert not res.passed and "caching" in res.proof.failing and res.proof.headline == MSG_CACHING_OFF
    ident = identity.run_identity(ctx)
    flags = [c for c in ident.checks if c.key.startswith("prefix:")]
    assert len(flags) == 3 and all(c.ok is False for c in flags) and not ident.passed
    assert identity.probe(ctx).status is Status.FAILED


def test_service_proxy_access_on_the_emulator(make_sim_world, tmp_path):
    world = make_sim_world("deployed", speed=SPEED)
    ctx = make_ctx(world, tmp_path)
    live = dataclasses.replace(verify.read_live(ctx), gateway=None)     # as if the gateway had no address
    access = verify.resolve_access(ctx, live)
    assert access.via == verify.VIA_SERVICE_PROXY and "gateway" in access.description
    checks = verify.run_verify(ctx, quick=True, live=live)
    assert verify.all_passed(checks), [(c.key, c.evidence) for c in checks if c.ok is not True]
    assert "via Kubernetes service proxy" in next(c for c in checks if c.key == "access").evidence


def test_report_after_steps_9_to_11_contains_no_secret(make_sim_world, tmp_path, tmp_path_factory):
    world = make_sim_world("deployed", speed=SPEED, state_dir=tmp_path_factory.mktemp("world"))
    roomy_data_plane(world)  # the report's overall verdict includes the guide's throughput figures
    secrets = SecretsInput()
    secrets.add(hf_secret_from_form(HF_CANARY))
    secrets.add(pull_secret_from_form("canary-user", PW_CANARY))
    work = tmp_path / "work"
    ctx = make_ctx(world, work, secrets=secrets)
    kube = ctx.kube()
    for spec in secrets.specs:                      # the cluster's secrets hold the canaries too
        kube.apply(spec.manifest(ctx.cfg.namespace))
    lines: list[str] = []
    run = run_checks(ctx, dataclasses.replace(PERF, modes=("closed",), duration_s=1.5), on_line=lines.append)
    assert run.passed and run.exit_code == 0, [ln for ln in lines if "FAIL" in ln]
    data = build_report_from_run(ctx, run, notes=["handed over to the customer"])
    paths = write_report(work / "reports" / "poc", data)
    assert {p.suffix for p in paths} >= {".md", ".json"}
    assert all(stat.S_IMODE(os.stat(p).st_mode) == 0o644 for p in paths)
    md = paths[0].read_text()
    assert "Overall: PASS" in md and "cache-aware routing works" in md and "SIMULATED" in md
    written = [p for p in work.rglob("*") if p.is_file()]
    assert len(written) >= 3                       # report files and the state file
    for p in written:
        text = p.read_text(errors="replace")
        assert HF_CANARY not in text and PW_CANARY not in text, p
    assert HF_CANARY not in "\n".join(lines) and PW_CANARY not in "\n".join(lines)
