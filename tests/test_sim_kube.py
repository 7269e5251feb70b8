"""The emulated Kubernetes API driven by the real `kubernetes` client (sync, HTTPS + CA + token).

Every test gets its own server on port 0 (fixture `kube`, tests/kubehelpers.py).
"""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
from aiohttp import web
from kubernetes import client, watch
from kubernetes.client import exceptions as kexc

from kubehelpers import KubeThread, kube, running_pod  # noqa: F401 - fixture
from rhaii_tui.sim.kube import Faults

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"


def core(k) -> client.CoreV1Api:
    return client.CoreV1Api(k.api_client())


def http(k, token: str | None = "default") -> httpx.Client:
    headers = {}
    tok = k.token if token == "default" else token
    if tok:
        headers["Authorization"] = f"Bearer {tok}"
    return httpx.Client(base_url=k.host, verify=k.tls.client_context() if k.tls else False, headers=headers,
                        timeout=10)


def deployment(name: str, replicas: int = 1, labels: dict | None = None) -> dict:
    labels = labels or {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "main", "image": "vllm/vllm-tpu:v0.11",
                                                           "env": [{"name": "A", "value": "1"}],
                                                           "ports": [{"containerPort": 8000}]}]}}}}


CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "llminferenceservices.serving.kserve.io"},
    "spec": {"group": "serving.kserve.io", "scope": "Namespaced",
             "names": {"plural": "llminferenceservices", "singular": "llminferenceservice",
                       "kind": "LLMInferenceService", "shortNames": ["llmisvc"]},
             "versions": [{"name": "v1alpha1", "served": True, "storage": True,
                           "subresources": {"status": {}},
                           "additionalPrinterColumns": [
                               {"name": "URL", "type": "string", "jsonPath": ".status.url"},
                               {"name": "Ready", "type": "string",
                                "jsonPath": ".status.conditions[?(@.type=='Ready')].status"},
                               {"name": "Reason", "type": "string",
                                "jsonPath": ".status.conditions[?(@.type=='Ready')].reason"},
                               {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}],
                           "schema": {"openAPIV3Schema": {"type": "object",
                                                          "x-kubernetes-preserve-unknown-fields": True}}}]}}
G, V, PL = "serving.kserve.io", "v1alpha1", "llminferenceservices"


def llmisvc(name: str = "qwen") -> dict:
    return {"apiVersion": f"{G}/{V}", "kind": "LLMInferenceService", "metadata": {"name": name},
            "spec": {"model": {"uri": "hf://Qwen/Qwen2.5-3B-Instruct"}, "replicas": 3}}


# --- CRUD and typed models ----------------------------------------------------------------------


def test_crud_round_trips_through_typed_models(kube):
    v1, apps = core(kube), client.AppsV1Api(kube.api_client())
    v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="llm")))
    cm = v1.create_namespaced_config_map("llm", {"metadata": {"name": "cfg"}, "data": {"k": "v"}})
    assert cm.metadata.uid and cm.metadata.resource_version and cm.metadata.creation_timestamp
    sec = v1.create_namespaced_secret("llm", {"metadata": {"name": "hf"}, "stringData": {"token": "hf_x"}})
    assert sec.data == {"token": "aGZfeA=="} and sec.type == "Opaque"
    svc = v1.create_namespaced_service("llm", {"metadata": {"name": "svc"},
                                               "spec": {"selector": {"app": "x"}, "ports": [{"port": 8000}]}})
    assert svc.spec.cluster_ip.startswith("34.118.") and svc.spec.ports[0].target_port == 8000
    d = apps.create_namespaced_deployment("llm", deployment("vllm", 3))
    assert d.metadata.generation == 1 and d.spec.strategy.type == "RollingUpdate"
    assert d.spec.template.spec.containers[0].image_pull_policy == "IfNotPresent"
    pod = v1.create_namespaced_pod("llm", client.V1Pod(
        metadata=client.V1ObjectMeta(name="p"),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")])))
    assert pod.status.phase == "Pending" and pod.spec.service_account_name == "default"

    kube.create("pods", running_pod("served", "llm"), "llm")  # as the kubelet reports it
    got = v1.read_namespaced_pod("served", "llm")
    assert got.status.container_statuses[0].image_id and got.status.container_statuses[0].ready
    names = {(p.metadata.namespace, p.metadata.name) for p in v1.list_pod_for_all_namespaces().items}
    assert names == {("llm", "p"), ("llm", "served")}
    lst = v1.list_namespaced_config_map("llm")
    assert lst.metadata.resource_version and [c.metadata.name for c in lst.items] == ["cfg"]

    cm.data["k"] = "v2"
    cm2 = v1.replace_namespaced_config_map("cfg", "llm", cm)
    assert int(cm2.metadata.resource_version) > int(cm.metadata.resource_version)
    with pytest.raises(kexc.ConflictException) as e:  # stale resourceVersion
        v1.replace_namespaced_config_map("cfg", "llm", cm)
    assert json.loads(e.value.body)["reason"] == "Conflict"


def test_errors_are_status_objects_with_typed_exceptions(kube):
    v1, apps = core(kube), client.AppsV1Api(kube.api_client())
    v1.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    with pytest.raises(kexc.ConflictException) as e:
        v1.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    body = json.loads(e.value.body)
    assert body["kind"] == "Status" and body["reason"] == "AlreadyExists"
    assert body["message"] == 'configmaps "a" already exists'
    with pytest.raises(kexc.NotFoundException) as e:
        v1.read_namespaced_config_map("nope", "default")
    assert json.loads(e.value.body)["message"] == 'configmaps "nope" not found'
    with pytest.raises(kexc.NotFoundException) as e:
        v1.create_namespaced_config_map("missing-ns", {"metadata": {"name": "a"}})
    assert json.loads(e.value.body)["message"] == 'namespaces "missing-ns" not found'
    with pytest.raises(kexc.UnprocessableEntityException) as e:
        v1.create_namespaced_config_map("default", {"metadata": {"name": "Bad_Name"}})
    assert "Invalid value" in json.loads(e.value.body)["message"]
    with pytest.raises(kexc.UnprocessableEntityException) as e:
        v1.create_namespaced_config_map("default", {"metadata": {}})
    assert "name or generateName is required" in e.value.body
    bad = deployment("bad")
    bad["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    with pytest.raises(kexc.UnprocessableEntityException) as e:
        apps.create_namespaced_deployment("default", bad)
    assert "`selector` does not match template `labels`" in e.value.body
    with pytest.raises(kexc.UnprocessableEntityException):
        v1.create_namespaced_pod("default", {"metadata": {"name": "nocontainers"}, "spec": {"containers": []}})
    with http(kube) as h:
        r = h.get("/api/v1/namespaces/default/frobs")
        assert r.status_code == 404 and r.json()["message"] == "the server could not find the requested resource"
        r = h.post("/api/v1/namespaces/default/configmaps/a", json={})
        assert r.status_code == 405 and r.json()["reason"] == "MethodNotAllowed"
        r = h.post("/api/v1/namespaces/default/configmaps", content=b"\x00\x01",
                   headers={"Content-Type": "application/vnd.kubernetes.protobuf"})
        assert r.status_code == 415
        r = h.post("/api/v1/namespaces/default/configmaps", json={"apiVersion": "v1", "kind": "Secret",
                                                                 "metadata": {"name": "x"}})
        assert r.status_code == 400


def test_generate_name_no_content_type_and_yaml(kube):
    v1 = core(kube)
    a = v1.create_namespaced_config_map("default", {"metadata": {"generateName": "run-"}})
    b = v1.create_namespaced_config_map("default", {"metadata": {"generateName": "run-"}})
    assert a.metadata.name.startswith("run-") and len(a.metadata.name) == 9 and a.metadata.name != b.metadata.name
    with http(kube) as h:
        r = h.post("/api/v1/namespaces/default/configmaps", content=json.dumps({"metadata": {"name": "raw"}}))
        assert r.status_code == 201 and "content-type" not in {k.lower() for k in r.request.headers if
                                                               k.lower() == "content-type"}
        r = h.post("/api/v1/namespaces/default/configmaps", headers={"Content-Type": "application/yaml"},
                   content=b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fromyaml\ndata:\n  when: "
                           b"2026-01-01T00:00:00Z\n")
        assert r.status_code == 201, r.text
    assert v1.read_namespaced_config_map("fromyaml", "default").data == {"when": "2026-01-01T00:00:00Z"}


# --- patches ---------------------------------------------------------------------------------------


def test_merge_json_and_strategic_patches(kube):
    v1, apps = core(kube), client.AppsV1Api(kube.api_client())
    apps.create_namespaced_deployment("default", deployment("vllm"))
    d = apps.patch_namespaced_deployment("vllm", "default", {"spec": {"template": {"spec": {"containers": [
        {"name": "main", "env": [{"name": "B", "value": "2"}]},
        {"name": "sidecar", "image": "envoy:1"}]}}}})  # strategic merge (dict body)
    cs = d.spec.template.spec.containers
    assert [c.name for c in cs] == ["main", "sidecar"]
    assert cs[0].image == "vllm/vllm-tpu:v0.11" and [e.name for e in cs[0].env] == ["A", "B"]
    assert d.metadata.generation == 2
    d = apps.patch_namespaced_deployment("vllm", "default", {"spec": {"template": {"spec": {"containers": [
        {"name": "sidecar", "$patch": "delete"}]}}}})
    assert [c.name for c in d.spec.template.spec.containers] == ["main"]
    d = apps.patch_namespaced_deployment("vllm", "default", [  # json patch (list body)
        {"op": "replace", "path": "/spec/replicas", "value": 2}])
    assert d.spec.replicas == 2
    v1.create_namespaced_config_map("default", {"metadata": {"name": "c", "labels": {"a": "1", "b": "2"}}})
    c = v1.patch_namespaced_config_map("c", "default", {"metadata": {"labels": {"a": None}}},
                                       _content_type="application/merge-patch+json")
    assert c.metadata.labels == {"b": "2"}
    with pytest.raises(kexc.UnprocessableEntityException):
        v1.patch_namespaced_config_map("c", "default", [{"op": "test", "path": "/data", "value": {"x": "y"}}])
    with pytest.raises(kexc.ConflictException):  # resourceVersion in a patch is a precondition
        v1.patch_namespaced_config_map("c", "default", {"metadata": {"resourceVersion": "1"}})
    with pytest.raises(kexc.NotFoundException):
        v1.patch_namespaced_config_map("zzz", "default", {"data": {}})


def test_server_side_apply_creates_updates_and_needs_field_manager(kube):
    v1 = core(kube)
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "sa", "namespace": "default"},
            "data": {"a": "1", "b": "2"}}
    c = v1.patch_namespaced_config_map("sa", "default", body, field_manager="wizard", force=True,
                                       _content_type="application/apply-patch+yaml")
    assert c.data == {"a": "1", "b": "2"}
    assert [(m.manager, m.operation) for m in c.metadata.managed_fields] == [("wizard", "Apply")]
    body["data"] = {"a": "9"}
    c = v1.patch_namespaced_config_map("sa", "default", body, field_manager="wizard", force=True,
                                       _content_type="application/apply-patch+yaml")
    assert c.data == {"a": "9"}  # b was the wizard's and is no longer applied
    with pytest.raises(kexc.UnprocessableEntityException) as e:
        v1.patch_namespaced_config_map("sa", "default", body, _content_type="application/apply-patch+yaml")
    assert "fieldManager: Required value" in e.value.body


def test_custom_resource_lifecycle_discovery_and_415(kube):
    co = client.CustomObjectsApi(kube.api_client())
    ext = client.ApiextensionsV1Api(kube.api_client())
    with pytest.raises(kexc.NotFoundException):  # unknown kind before its CRD exists
        co.list_namespaced_custom_object(G, V, "default", PL)
    with http(kube) as h:
        assert G not in [g["name"] for g in h.get("/apis").json()["groups"]]
        ext.create_custom_resource_definition(CRD)
        assert G in [g["name"] for g in h.get("/apis").json()["groups"]]
        res = {r["name"]: r for r in h.get(f"/apis/{G}/{V}").json()["resources"]}
        assert res[PL]["kind"] == "LLMInferenceService" and res[PL]["shortNames"] == ["llmisvc"]
        assert "llminferenceservices/status" in res
    crd = ext.read_custom_resource_definition(f"{PL}.{G}")
    assert {c.type: c.status for c in crd.status.conditions}["Established"] == "True"

    obj = co.create_namespaced_custom_object(G, V, "default", PL, llmisvc())
    assert obj["metadata"]["generation"] == 1 and obj["kind"] == "LLMInferenceService"
    with pytest.raises(kexc.ApiException) as e:
        co.patch_namespaced_custom_object(G, V, "default", PL, "qwen", {"spec": {"replicas": 2}},
                                          _content_type="application/strategic-merge-patch+json")
    assert e.value.status == 415
    assert json.loads(e.value.body)["message"] == (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml")
    obj = co.patch_namespaced_custom_object(G, V, "default", PL, "qwen", {"spec": {"replicas": 2}})
    assert obj["spec"]["replicas"] == 2 and obj["metadata"]["generation"] == 2
    st = co.patch_namespaced_custom_object_status(G, V, "default", PL, "qwen", {"status": {"conditions": [
        {"type": "Ready", "status": "True", "reason": "AllGood"}]}})
    assert st["metadata"]["generation"] == 2  # status writes do not bump generation
    obj = co.replace_namespaced_custom_object(G, V, "default", PL, "qwen", {**st, "status": {}})
    assert obj["status"]["conditions"][0]["type"] == "Ready"  # main resource keeps status (subresource)
    # apply creates (201 like the apiserver; this client method maps only 200, so it returns None)
    co.patch_namespaced_custom_object(G, V, "default", PL, "other", llmisvc("other"), field_manager="wizard",
                                      _content_type="application/apply-patch+yaml")
    applied = co.get_namespaced_custom_object(G, V, "default", PL, "other")
    assert applied["metadata"]["managedFields"][0]["manager"] == "wizard"
    assert len(co.list_cluster_custom_object(G, V, PL)["items"]) == 2

    ext.delete_custom_resource_definition(f"{PL}.{G}")
    with pytest.raises(kexc.NotFoundException):
        co.list_namespaced_custom_object(G, V, "default", PL)


def test_status_and_scale_subresources(kube):
    apps = client.AppsV1Api(kube.api_client())
    apps.create_namespaced_deployment("default", deployment("vllm", 1))
    d = apps.read_namespaced_deployment_status("vllm", "default")
    d.status = client.V1DeploymentStatus(replicas=1, ready_replicas=1, available_replicas=1,
                                         conditions=[client.V1DeploymentCondition(type="Available", status="True")])
    d = apps.replace_namespaced_deployment_status("vllm", "default", d)
    assert d.status.ready_replicas == 1 and d.metadata.generation == 1
    s = apps.read_namespaced_deployment_scale("vllm", "default")
    assert (s.spec.replicas, s.status.replicas, s.status.selector) == (1, 1, "app=vllm")
    s = apps.patch_namespaced_deployment_scale("vllm", "default", {"spec": {"replicas": 3}})
    assert s.spec.replicas == 3
    s.spec.replicas = 4
    assert apps.replace_namespaced_deployment_scale("vllm", "default", s).spec.replicas == 4
    d = apps.read_namespaced_deployment("vllm", "default")
    assert d.spec.replicas == 4 and d.status.ready_replicas == 1 and d.metadata.generation == 3
    with pytest.raises(kexc.UnprocessableEntityException):
        apps.patch_namespaced_deployment_scale("vllm", "default", {"spec": {"replicas": -1}})


def test_delete_semantics_dry_run_and_collections(kube):
    v1 = core(kube)
    for i in range(3):
        v1.create_namespaced_config_map("default", {"metadata": {"name": f"c{i}",
                                                                 "labels": {"grp": "a" if i < 2 else "b"}}})
    assert v1.create_namespaced_config_map("default", {"metadata": {"name": "dry"}}, dry_run="All").metadata.uid
    with pytest.raises(kexc.NotFoundException):
        v1.read_namespaced_config_map("dry", "default")
    v1.patch_namespaced_config_map("c0", "default", {"data": {"x": "1"}}, dry_run="All")
    assert v1.read_namespaced_config_map("c0", "default").data is None
    v1.delete_namespaced_config_map("c0", "default", dry_run="All")
    st = v1.delete_namespaced_config_map("c0", "default")
    assert st["kind"] == "Status" and st["status"] == "Success" and st["details"]["name"] == "c0"
    with pytest.raises(kexc.ConflictException):
        v1.delete_namespaced_config_map("c1", "default", body=client.V1DeleteOptions(
            preconditions=client.V1Preconditions(uid="not-the-uid")))
    v1.delete_collection_namespaced_config_map("default", label_selector="grp=a")
    assert [c.metadata.name for c in v1.list_namespaced_config_map("default").items] == ["c2"]

    kube.create("pods", running_pod("run", "default"), "default")
    p = v1.delete_namespaced_pod("run", "default")  # graceful: a running pod stays Terminating
    assert p.metadata.deletion_timestamp is not None and p.metadata.deletion_grace_period_seconds == 30
    p = v1.delete_namespaced_pod("run", "default", grace_period_seconds=0)
    with pytest.raises(kexc.NotFoundException):
        v1.read_namespaced_pod("run", "default")
    with http(kube) as h:  # DeleteOptions in the query
        v1.create_namespaced_config_map("default", {"metadata": {"name": "q"}})
        r = h.delete("/api/v1/namespaces/default/configmaps/q?propagationPolicy=Foreground&gracePeriodSeconds=0")
        assert r.status_code == 200
        r = h.delete("/api/v1/namespaces/default/configmaps/c2?propagationPolicy=Sideways")
        assert r.status_code == 422


# --- watches -----------------------------------------------------------------------------------------


def test_watch_resume_selectors_and_410(kube):
    v1 = core(kube)
    v1.create_namespaced_config_map("default", {"metadata": {"name": "w0", "labels": {"app": "x"}}})
    lst = v1.list_namespaced_config_map("default")
    rv = lst.metadata.resource_version
    v1.create_namespaced_config_map("default", {"metadata": {"name": "w1", "labels": {"app": "x"}}})
    v1.create_namespaced_config_map("default", {"metadata": {"name": "w2", "labels": {"app": "y"}}})
    v1.patch_namespaced_config_map("w1", "default", {"data": {"k": "v"}})
    v1.delete_namespaced_config_map("w1", "default")
    w = watch.Watch()
    seen = [(e["type"], e["object"].metadata.name) for e in w.stream(
        v1.list_namespaced_config_map, "default", resource_version=rv, label_selector="app=x", timeout_seconds=1)]
    assert seen == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]
    seen = [(e["type"], e["object"].metadata.name) for e in watch.Watch().stream(
        v1.list_namespaced_config_map, "default", field_selector="metadata.name=w2", timeout_seconds=1)]
    assert seen == [("ADDED", "w2")]  # no rv: synthetic ADDED for the current state

    kube.call(lambda: kube.store.compact(kube.rt("configmaps")))
    with pytest.raises(kexc.ApiException) as e:
        list(watch.Watch().stream(v1.list_namespaced_config_map, "default", resource_version=rv,
                                  timeout_seconds=5))
    assert e.value.status == 410
    with http(kube) as h:  # on the wire: 200 + one ERROR event, then EOF
        r = h.get(f"/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}")
        assert r.status_code == 200
        lines = r.text.strip().splitlines()
        assert len(lines) == 1 and json.loads(lines[0])["object"]["code"] == 410
        assert json.loads(lines[0])["object"]["reason"] == "Expired"


def test_watch_timeout_bookmark_and_legacy_paths(kube):
    v1 = core(kube)
    v1.create_namespaced_config_map("default", {"metadata": {"name": "b"}})
    t0 = time.monotonic()
    w = watch.Watch()
    events = list(w.stream(v1.list_namespaced_config_map, "default", allow_watch_bookmarks=True,
                           timeout_seconds=1))
    assert 0.8 < time.monotonic() - t0 < 3
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    assert int(w.resource_version) >= int(events[0]["object"].metadata.resource_version)
    with http(kube) as h:
        with h.stream("GET", "/api/v1/watch/namespaces/default/configmaps/b?timeoutSeconds=1") as r:
            lines = [json.loads(x) for x in r.iter_lines() if x]
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in lines] == [("ADDED", "b")]
        with h.stream("GET", "/api/v1/namespaces/default/configmaps?watch=1&sendInitialEvents=true"
                             "&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1") as r:
            lines = [json.loads(x) for x in r.iter_lines() if x]
        assert lines[0]["type"] == "ADDED"
        assert lines[1]["type"] == "BOOKMARK"
        assert lines[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_watch_live_events_and_unwatch_on_disconnect(kube):
    v1 = core(kube)
    got: list = []
    ready = threading.Event()

    def consume():
        w = watch.Watch()
        for e in w.stream(v1.list_namespaced_config_map, "default", timeout_seconds=10):
            ready.set()
            got.append((e["type"], e["object"].metadata.name))
            if len(got) == 3:
                w.stop()
                break

    v1.create_namespaced_config_map("default", {"metadata": {"name": "first"}})
    t = threading.Thread(target=consume)
    t.start()
    assert ready.wait(5)
    v1.create_namespaced_config_map("default", {"metadata": {"name": "live"}})
    v1.delete_namespaced_config_map("live", "default")
    t.join(5)
    assert got == [("ADDED", "first"), ("ADDED", "live"), ("DELETED", "live")]
    deadline = time.monotonic() + 5
    while kube.call(kube.store.watcher_count) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert kube.call(kube.store.watcher_count) == 0


# --- tables --------------------------------------------------------------------------------------


def test_server_side_tables_like_kubectl(kube):
    client.ApiextensionsV1Api(kube.api_client()).create_custom_resource_definition(CRD)
    kube.create("pods", running_pod("ok"), "default")
    pending = running_pod("init")
    pending["spec"]["initContainers"] = [{"name": "fetch", "image": "busybox"}]
    pending["status"] = {"phase": "Pending", "initContainerStatuses": [
        {"name": "fetch", "image": "busybox", "imageID": "", "ready": False, "restartCount": 0,
         "state": {"waiting": {"reason": "PodInitializing"}}}]}
    kube.create("pods", pending, "default")
    pull = running_pod("pull")
    pull["status"]["containerStatuses"][0].update(ready=False, state={"waiting": {"reason": "ImagePullBackOff"}})
    kube.create("pods", pull, "default")
    client.AppsV1Api(kube.api_client()).create_namespaced_deployment("default", deployment("vllm", 3))
    co = client.CustomObjectsApi(kube.api_client())
    co.create_namespaced_custom_object(G, V, "default", PL, llmisvc())
    co.patch_namespaced_custom_object_status(G, V, "default", PL, "qwen", {"status": {
        "url": "http://gw/qwen", "conditions": [{"type": "Ready", "status": "False", "reason": "Compiling"}]}})
    with http(kube) as h:
        t = h.get("/api/v1/namespaces/default/pods", headers={"Accept": TABLE}).json()
        assert t["kind"] == "Table" and t["apiVersion"] == "meta.k8s.io/v1"
        assert [c["name"] for c in t["columnDefinitions"] if c["priority"] == 0] == \
            ["Name", "Ready", "Status", "Restarts", "Age"]
        rows = {r["cells"][0]: r["cells"][1:4] for r in t["rows"]}
        assert rows == {"ok": ["1/1", "Running", "0"], "init": ["0/1", "Init:0/1", "0"],
                        "pull": ["0/1", "ImagePullBackOff", "0"]}
        assert t["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
        t = h.get("/apis/apps/v1/namespaces/default/deployments/vllm", headers={"Accept": TABLE}).json()
        assert [c["name"] for c in t["columnDefinitions"]][:5] == ["Name", "Ready", "Up-to-date", "Available", "Age"]
        assert t["rows"][0]["cells"][:4] == ["vllm", "0/3", 0, 0]
        t = h.get(f"/apis/{G}/{V}/namespaces/default/{PL}", headers={"Accept": TABLE}).json()
        assert [c["name"] for c in t["columnDefinitions"]] == ["Name", "URL", "Ready", "Reason", "Age"]
        assert t["rows"][0]["cells"][:4] == ["qwen", "http://gw/qwen", "False", "Compiling"]
        t = h.get("/api/v1/namespaces", headers={"Accept": TABLE}, params={"includeObject": "Object"}).json()
        assert t["rows"][0]["cells"][:2] == ["default", "Active"] and t["rows"][0]["object"]["kind"] == "Namespace"
        # a plain JSON client still gets the list
        assert h.get("/api/v1/namespaces/default/pods").json()["kind"] == "PodList"
        with h.stream("GET", "/api/v1/namespaces/default/pods?watch=true&timeoutSeconds=1",
                      headers={"Accept": TABLE}) as r:
            evs = [json.loads(x) for x in r.iter_lines() if x]
        assert {e["object"]["kind"] for e in evs} == {"Table"}
        assert evs[0]["object"]["columnDefinitions"] and not evs[1]["object"]["columnDefinitions"]
        assert sorted(e["object"]["rows"][0]["cells"][0] for e in evs) == ["init", "ok", "pull"]


# --- logs ------------------------------------------------------------------------------------------


def test_logs_tail_timestamps_and_errors(kube):
    v1 = core(kube)
    kube.create("pods", running_pod("one"), "default")
    kube.call(lambda: kube.logs.append("default", "one", "app", "a\nb\nc"))
    assert v1.read_namespaced_pod_log("one", "default") == "a\nb\nc\n"
    assert v1.read_namespaced_pod_log("one", "default", tail_lines=2) == "b\nc\n"
    kube.call(lambda: kube.logs.append("default", "one", "app", "old", ts=time.time() - 3600))
    assert v1.read_namespaced_pod_log("one", "default", since_seconds=60) == "a\nb\nc\n"
    assert v1.read_namespaced_pod_log("one", "default", limit_bytes=3) == "a\nb"
    stamped = v1.read_namespaced_pod_log("one", "default", timestamps=True, tail_lines=1)
    assert stamped.endswith("Z old\n") and stamped[:4].isdigit()
    kube.create("pods", running_pod("two", containers=("vllm", "proxy")), "default")
    with pytest.raises(kexc.BadRequestException) as e:
        v1.read_namespaced_pod_log("two", "default")
    assert json.loads(e.value.body)["message"] == \
        "a container name must be specified for pod two, choose one of: [vllm proxy]"
    with pytest.raises(kexc.BadRequestException) as e:
        v1.read_namespaced_pod_log("two", "default", container="nope")
    assert "container nope is not valid for pod two" in e.value.body
    creating = running_pod("creating")
    creating["status"] = {"phase": "Pending", "containerStatuses": [
        {"name": "app", "image": "x", "imageID": "", "ready": False, "restartCount": 0,
         "state": {"waiting": {"reason": "ContainerCreating"}}}]}
    kube.create("pods", creating, "default")
    with pytest.raises(kexc.BadRequestException) as e:
        v1.read_namespaced_pod_log("creating", "default")
    assert json.loads(e.value.body)["message"] == \
        'container "app" in pod "creating" is waiting to start: ContainerCreating'
    initp = running_pod("initp")
    initp["spec"]["initContainers"] = [{"name": "init", "image": "x"}]
    initp["status"] = {"phase": "Pending"}
    kube.create("pods", initp, "default")
    with pytest.raises(kexc.BadRequestException) as e:
        v1.read_namespaced_pod_log("initp", "default")
    assert "is waiting to start: PodInitializing" in e.value.body
    with pytest.raises(kexc.BadRequestException) as e:
        v1.read_namespaced_pod_log("one", "default", previous=True)
    assert json.loads(e.value.body)["message"] == 'previous terminated container "app" in pod "one" not found'
    kube.call(lambda: kube.logs.restart("default", "one", "app"))
    assert v1.read_namespaced_pod_log("one", "default", previous=True, tail_lines=3) == "b\nc\nold\n"


def test_log_follow_streams_until_the_container_ends(kube):
    v1 = core(kube)
    kube.create("pods", running_pod("f"), "default")
    kube.call(lambda: kube.logs.append("default", "f", "app", "start"))

    def feed():
        time.sleep(0.3)
        for i in range(3):
            kube.call(lambda i=i: kube.logs.append("default", "f", "app", f"line {i}"))
            time.sleep(0.05)
        kube.call(lambda: kube.logs.terminate("default", "f", "app"))

    threading.Thread(target=feed, daemon=True).start()
    t0 = time.monotonic()
    resp = v1.read_namespaced_pod_log("f", "default", follow=True, _preload_content=False)
    data = b"".join(resp.stream(1024))
    resp.close()
    assert data.decode() == "start\nline 0\nline 1\nline 2\n"
    assert time.monotonic() - t0 < 5
    lines = list(watch.Watch().stream(v1.read_namespaced_pod_log, "f", "default", tail_lines=1))
    assert lines == ["line 2"]


# --- auth, discovery, proxy, faults ------------------------------------------------------------


def test_bearer_token_and_revocation():
    faults = Faults()
    with KubeThread(faults=faults) as k:
        with pytest.raises(kexc.UnauthorizedException) as e:
            client.CoreV1Api(k.api_client(token="wrong")).list_namespace()
        assert json.loads(e.value.body)["message"] == "Unauthorized"
        with http(k, token=None) as h:
            assert h.get("/api/v1/namespaces").status_code == 401
            assert h.get("/healthz").text == "ok" and h.get("/readyz").status_code == 200
            assert h.get("/version").json()["gitVersion"].startswith("v1.33")
        assert client.CoreV1Api(k.api_client()).list_namespace().items
        faults.revoked = {k.token}  # the world's revoked-token set, checked live
        with pytest.raises(kexc.UnauthorizedException):
            client.CoreV1Api(k.api_client()).list_namespace()
        faults.revoked = False
        assert client.CoreV1Api(k.api_client()).list_namespace().items


def test_plain_http_without_token_and_discovery_documents():
    with KubeThread(tls=False, token=None) as k:
        with http(k, token=None) as h:
            assert h.get("/api").json()["versions"] == ["v1"]
            core_res = {r["name"]: r for r in h.get("/api/v1").json()["resources"]}
            assert core_res["pods"]["shortNames"] == ["po"] and "all" in core_res["pods"]["categories"]
            assert {"pods/log", "pods/status", "services/proxy", "pods/proxy"} <= set(core_res)
            assert core_res["pods/log"]["verbs"] == ["get"]
            apps = {r["name"]: r for r in h.get("/apis/apps/v1").json()["resources"]}
            assert apps["deployments/scale"]["group"] == "autoscaling" and apps["deployments/scale"]["kind"] == "Scale"
            assert h.get("/apis/apps").json()["preferredVersion"]["groupVersion"] == "apps/v1"
            idx = h.get("/openapi/v3").json()["paths"]
            doc = h.get(idx["apis/apps/v1"]["serverRelativeURL"]).json()
            op = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
            assert op["x-kubernetes-group-version-kind"]["kind"] == "Deployment"
            assert "fieldValidation" in [p["name"] for p in op["parameters"]]
            assert h.get("/apis/nope.io/v1").status_code == 404
        assert client.CoreV1Api(k.api_client()).list_namespace().items[0].metadata.name == "default"


def test_service_and_pod_proxy_pass_through():
    calls = []

    async def proxy(request, kind, namespace, name, port, path):
        body = await request.read()
        calls.append((request.method, kind, namespace, name, port, path, request.query_string, body))
        return web.json_response({"ok": True, "path": path})

    with KubeThread(proxy=proxy) as k:
        core(k).create_namespaced_service("default", {"metadata": {"name": "vllm"},
                                                      "spec": {"ports": [{"port": 8000}]}})
        k.create("pods", running_pod("p"), "default")
        with http(k) as h:
            r = h.post("/api/v1/namespaces/default/services/vllm:8000/proxy/v1/completions?x=1",
                       json={"prompt": "hi"})
            assert r.status_code == 200 and r.json() == {"ok": True, "path": "/v1/completions"}
            assert h.get("/api/v1/namespaces/default/pods/p/proxy/").json()["path"] == "/"
            assert h.get("/api/v1/namespaces/default/services/http:vllm:8000/proxy/health").status_code == 200
            assert h.get("/api/v1/namespaces/default/services/nope/proxy/health").status_code == 404
        assert calls[0] == ("POST", "services", "default", "vllm", "8000", "/v1/completions", "x=1",
                            b'{"prompt":"hi"}')
        assert calls[1][1:6] == ("pods", "default", "p", None, "/")
    with KubeThread() as k:
        core(k).create_namespaced_service("default", {"metadata": {"name": "vllm"},
                                                      "spec": {"ports": [{"port": 8000}]}})
        with http(k) as h:
            r = h.get("/api/v1/namespaces/default/services/vllm:8000/proxy/health")
            assert r.status_code == 503 and r.json()["reason"] == "ServiceUnavailable"


def test_faults_errors_drops_and_expiry():
    faults = Faults(error_rate=1.0, seed=7)
    with KubeThread(faults=faults) as k:
        with http(k) as h:
            codes = set()
            for _ in range(20):
                r = h.get("/api/v1/namespaces/default/configmaps")
                codes.add(r.status_code)
                if r.status_code == 429:
                    assert r.headers["Retry-After"] == "1" and r.json()["reason"] == "TooManyRequests"
                else:
                    assert r.json()["reason"] == "InternalError"
            assert codes == {429, 500}
            with h.stream("GET", "/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1") as r:
                assert r.status_code == 200  # watches are not failed, they are dropped
            faults.error_rate = 0.0
            faults.watch_drop_seconds = 0.3
            t0 = time.monotonic()
            with h.stream("GET", "/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=30") as r:
                list(r.iter_lines())
            assert time.monotonic() - t0 < 3
            faults.watch_drop_seconds = None
            rv = h.get("/api/v1/namespaces/default/configmaps").json()["metadata"]["resourceVersion"]
            faults.expire_once = True
            with h.stream("GET", f"/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}"
                                 "&timeoutSeconds=1") as r:
                ev = [json.loads(x) for x in r.iter_lines() if x]
            assert ev[0]["type"] == "ERROR" and ev[0]["object"]["code"] == 410
            with h.stream("GET", f"/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}"
                                 "&timeoutSeconds=1") as r:
                assert [x for x in r.iter_lines() if x] == []  # only once


def test_untrusted_ca_is_rejected(kube):
    with httpx.Client(base_url=kube.host, verify=True, timeout=5) as h:
        with pytest.raises(httpx.ConnectError):
            h.get("/version")


def test_builtin_tables_events_and_self_review(kube):
    v1 = core(kube)
    pod = kube.create("pods", running_pod("web"), "default")
    kube.call(lambda: kube.store.record_event(pod, "Pulled", "Container image pulled", component="kubelet"))
    kube.call(lambda: kube.store.record_event(pod, "Pulled", "Container image pulled", component="kubelet"))
    evs = v1.list_namespaced_event("default", field_selector=f"involvedObject.uid={pod['metadata']['uid']}")
    assert [(e.reason, e.count, e.involved_object.name) for e in evs.items] == [("Pulled", 2, "web")]
    kube.create("nodes", {"metadata": {"name": "gke-tpu-0", "labels": {"node-role.kubernetes.io/tpu": ""}},
                          "spec": {"unschedulable": True},
                          "status": {"conditions": [{"type": "Ready", "status": "True"}],
                                     "nodeInfo": {"kubeletVersion": "v1.32.4-gke.1000"}}})
    v1.create_namespaced_service("default", {"metadata": {"name": "gw"}, "spec": {
        "type": "LoadBalancer", "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]}})
    v1.create_namespaced_secret("default", {"metadata": {"name": "hf"}, "stringData": {"a": "1", "b": "2"}})
    with http(kube) as h:
        def table(path):
            t = h.get(path, headers={"Accept": TABLE}).json()
            return [c["name"] for c in t["columnDefinitions"] if c["priority"] == 0], \
                [[c for c, d in zip(r["cells"], t["columnDefinitions"]) if d["priority"] == 0] for r in t["rows"]]
        cols, rows = table("/api/v1/nodes")
        assert cols == ["Name", "Status", "Roles", "Age", "Version"]
        assert rows[0][:3] + rows[0][4:] == ["gke-tpu-0", "Ready,SchedulingDisabled", "tpu", "v1.32.4-gke.1000"]
        cols, rows = table("/api/v1/namespaces/default/services/gw")
        assert cols == ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age"]
        assert rows[0][1] == "LoadBalancer" and rows[0][3] == "<pending>"
        assert rows[0][4].startswith("80:") and ",443:" in rows[0][4]
        cols, rows = table("/api/v1/namespaces/default/secrets")
        assert cols == ["Name", "Type", "Data", "Age"] and rows[0][:3] == ["hf", "Opaque", 2]
        cols, rows = table("/api/v1/namespaces/default/events")
        assert cols == ["Last Seen", "Type", "Reason", "Object", "Message"]
        assert rows[0][1:] == ["Normal", "Pulled", "pod/web", "Container image pulled"] and "(x2 over" in rows[0][0]
    review = client.AuthorizationV1Api(kube.api_client()).create_self_subject_access_review(
        {"spec": {"resourceAttributes": {"verb": "create", "resource": "pods", "namespace": "default"}}})
    assert review.status.allowed is True


def test_custom_resource_scale_subresource(kube):
    crd = json.loads(json.dumps(CRD))
    crd["spec"]["versions"][0]["subresources"]["scale"] = {
        "specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector"}
    client.ApiextensionsV1Api(kube.api_client()).create_custom_resource_definition(crd)
    co = client.CustomObjectsApi(kube.api_client())
    co.create_namespaced_custom_object(G, V, "default", PL, llmisvc())
    s = co.get_namespaced_custom_object_scale(G, V, "default", PL, "qwen")
    assert s["kind"] == "Scale" and s["spec"]["replicas"] == 3
    co.patch_namespaced_custom_object_scale(G, V, "default", PL, "qwen", {"spec": {"replicas": 1}})
    assert co.get_namespaced_custom_object(G, V, "default", PL, "qwen")["spec"]["replicas"] == 1


def test_stop_closes_open_watches_and_follows():
    k = KubeThread().start()
    v1 = core(k)
    k.create("pods", running_pod("f"), "default")
    done = threading.Event()

    def follow():
        try:
            resp = v1.read_namespaced_pod_log("f", "default", follow=True, _preload_content=False)
            for _ in resp.stream(64):
                pass
        except Exception:  # noqa: BLE001 - the server going away may surface as an error
            pass
        done.set()

    def watch_it():
        try:
            for _ in watch.Watch().stream(v1.list_namespaced_pod, "default", timeout_seconds=60):
                pass
        except Exception:  # noqa: BLE001
            pass

    threads = [threading.Thread(target=follow, daemon=True), threading.Thread(target=watch_it, daemon=True)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    while k.call(k.store.watcher_count) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    t0 = time.monotonic()
    k.stop()
    assert time.monotonic() - t0 < 4
    assert done.wait(5)


def test_updates_through_the_api_do_not_default_controller_written_objects(kube):
    """A Deployment the emulator's controllers wrote without defaults keeps its pod template when
    the wizard patches it (else the template would change and the pods roll)."""
    kube.create("deployments", deployment("ctl"), "default", group="apps")
    apps = client.AppsV1Api(kube.api_client())
    d = apps.patch_namespaced_deployment("ctl", "default", {"metadata": {"labels": {"x": "y"}}})
    assert d.metadata.generation == 1 and d.spec.template.spec.containers[0].image_pull_policy is None
    apps.create_namespaced_deployment("default", deployment("api"))
    d = apps.patch_namespaced_deployment("api", "default", {"spec": {"template": {"spec": {"containers": [
        {"name": "extra", "image": "busybox"}]}}}})
    assert [c.image_pull_policy for c in d.spec.template.spec.containers] == ["IfNotPresent", "Always"]
