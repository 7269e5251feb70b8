"""Pure pieces of the emulated Kubernetes API: pod STATUS like kubectl, patches, tables, TLS."""

from __future__ import annotations

import ssl

import pytest
from cryptography import x509

from rhaii_tui.cloud.podstatus import pod_display_status, pod_ready_counts, pod_summary
from rhaii_tui.sim.kube import patch as P
from rhaii_tui.sim.kube.tables import TableMaker, human_duration, jsonpath
from rhaii_tui.sim.store import ApiError, Store
from rhaii_tui.sim.tls import TlsMaterial, make_tls


def pod(containers=("app",), init=(), statuses=None, init_statuses=None, phase="Pending", deleting=False,
        conditions=None) -> dict:
    p = {"metadata": {"name": "p"},
         "spec": {"containers": [{"name": c, "image": "x"} for c in containers],
                  "initContainers": [{"name": c, "image": "x"} for c in init]},
         "status": {"phase": phase}}
    if statuses is not None:
        p["status"]["containerStatuses"] = statuses
    if init_statuses is not None:
        p["status"]["initContainerStatuses"] = init_statuses
    if conditions is not None:
        p["status"]["conditions"] = conditions
    if deleting:
        p["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return p


def cs(name="app", ready=False, restarts=0, **state) -> dict:
    return {"name": name, "image": "x", "imageID": "", "ready": ready, "restartCount": restarts, "state": state}


@pytest.mark.parametrize("p,status,ready", [
    (pod(), "Pending", (0, 1)),
    (pod(statuses=[cs(waiting={"reason": "ContainerCreating"})]), "ContainerCreating", (0, 1)),
    (pod(statuses=[cs(waiting={"reason": "ImagePullBackOff", "message": "back-off"})]), "ImagePullBackOff", (0, 1)),
    (pod(phase="Running", statuses=[cs(ready=True, running={"startedAt": "2026-01-01T00:00:00Z"})]), "Running",
     (1, 1)),
    (pod(phase="Running", statuses=[cs(ready=False, running={})]), "Running", (0, 1)),
    (pod(init=("init",), init_statuses=[cs("init", waiting={"reason": "PodInitializing"})],
         statuses=[cs(waiting={"reason": "PodInitializing"})]), "Init:0/1", (0, 1)),
    (pod(init=("init",), init_statuses=[cs("init", running={})],
         statuses=[cs(waiting={"reason": "PodInitializing"})]), "Init:0/1", (0, 1)),
    (pod(init=("init",), init_statuses=[cs("init", restarts=3, waiting={"reason": "CrashLoopBackOff"})]),
     "Init:CrashLoopBackOff", (0, 1)),
    (pod(init=("init",), init_statuses=[cs("init", terminated={"exitCode": 1})]), "Init:ExitCode:1", (0, 1)),
    (pod(init=("init",), init_statuses=[cs("init", terminated={"exitCode": 0, "reason": "Completed"})],
         statuses=[cs(waiting={"reason": "PodInitializing"})]), "PodInitializing", (0, 1)),
    (pod(phase="Running", statuses=[cs(restarts=4, waiting={"reason": "CrashLoopBackOff"})]), "CrashLoopBackOff",
     (0, 1)),
    (pod(phase="Running", statuses=[cs(terminated={"exitCode": 137, "reason": "OOMKilled"})]), "OOMKilled", (0, 1)),
    (pod(phase="Running", deleting=True, statuses=[cs(ready=True, running={})]), "Terminating", (1, 1)),
    (pod(phase="Succeeded", deleting=True, statuses=[cs(terminated={"exitCode": 0, "reason": "Completed"})]),
     "Completed", (0, 1)),
    (pod(containers=("a", "b"), phase="Running",
         statuses=[cs("a", ready=True, running={}), cs("b", waiting={"reason": "ContainerCreating"})]),
     "ContainerCreating", (1, 2)),
    (pod(conditions=[{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]), "SchedulingGated",
     (0, 1)),
])
def test_pod_display_status_matches_kubectl(p, status, ready):
    assert pod_display_status(p) == status
    assert pod_ready_counts(p) == ready


def test_pod_restarts_and_sidecars():
    p = pod(init=("sidecar",), phase="Running",
            init_statuses=[cs("sidecar", ready=True, restarts=1, running={}) | {"started": True}],
            statuses=[cs(ready=True, restarts=2, running={})
                      | {"lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-01-01T00:01:00Z"}}}])
    p["spec"]["initContainers"][0]["restartPolicy"] = "Always"
    s = pod_summary(p)
    assert (s.status, s.ready, s.total, s.restarts) == ("Running", 2, 2, 3)
    assert s.last_restart == "2026-01-01T00:01:00Z"


def test_merge_patch_rfc7386():
    assert P.merge_patch({"a": {"b": 1, "c": 2}, "l": [1, 2]}, {"a": {"b": None, "d": 3}, "l": [3]}) == \
        {"a": {"c": 2, "d": 3}, "l": [3]}


def test_strategic_merge_lists_by_key_and_directives():
    orig = {"spec": {"containers": [
        {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}],
         "ports": [{"containerPort": 80}], "args": ["--one"]},
        {"name": "b", "image": "b:1"}],
        "volumes": [{"name": "v1", "emptyDir": {}}], "tolerations": [{"key": "t1"}]},
        "metadata": {"finalizers": ["f1"], "labels": {"a": "1", "b": "2"}}}
    patch = {"spec": {"containers": [
        {"name": "a", "env": [{"name": "Y", "value": "3"}, {"name": "Z", "value": "4"}, {"name": "X", "$patch": "delete"}],
         "ports": [{"containerPort": 8080}], "args": ["--two"]},
        {"name": "c", "image": "c:1"},
        {"name": "b", "$patch": "delete"}],
        "volumes": [{"name": "v2", "emptyDir": {}}], "tolerations": [{"key": "t2"}]},
        "metadata": {"finalizers": ["f2"], "labels": {"b": None}}}
    out = P.strategic_merge_patch(orig, patch)
    a = out["spec"]["containers"][0]
    assert [c["name"] for c in out["spec"]["containers"]] == ["a", "c"]
    assert a["image"] == "a:1"
    assert a["env"] == [{"name": "Y", "value": "3"}, {"name": "Z", "value": "4"}]
    assert a["ports"] == [{"containerPort": 80}, {"containerPort": 8080}]
    assert a["args"] == ["--two"]  # lists without a merge key are replaced
    assert [v["name"] for v in out["spec"]["volumes"]] == ["v1", "v2"]
    assert out["spec"]["tolerations"] == [{"key": "t2"}]
    assert out["metadata"]["finalizers"] == ["f1", "f2"]
    assert out["metadata"]["labels"] == {"a": "1"}
    assert orig["spec"]["containers"][1]["name"] == "b"  # input untouched


def test_strategic_merge_kubectl_apply_directives():
    orig = {"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}],
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}},
            "metadata": {"finalizers": ["x", "y"]}}
    patch = {"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                      "containers": [{"name": "b", "image": "2"}],
                      "strategy": {"$retainKeys": ["type"], "type": "Recreate"}},
             "metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}
    out = P.strategic_merge_patch(orig, patch)
    assert out["spec"]["containers"] == [{"name": "b", "image": "2"}, {"name": "a", "image": "1"}]
    assert out["spec"]["strategy"] == {"type": "Recreate"}
    assert out["metadata"]["finalizers"] == ["y"]
    assert P.strategic_merge_patch({"a": {"b": 1}}, {"a": {"$patch": "replace", "c": 2}}) == {"a": {"c": 2}}


def test_json_patch_and_errors():
    assert P.json_patch({"a": [1]}, [{"op": "add", "path": "/a/-", "value": 2}]) == {"a": [1, 2]}
    with pytest.raises(ApiError) as e:
        P.json_patch({"a": 1}, [{"op": "test", "path": "/a", "value": 2}])
    assert e.value.code == 422
    with pytest.raises(ApiError) as e:
        P.json_patch({"a": 1}, {"a": 2})
    assert e.value.code == 400


def test_server_side_apply_owns_and_removes_fields():
    applied = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "1", "b": "2"}},
               "data": {"x": "1", "y": "2"}}
    live = P.server_side_apply(None, applied, "wizard", "v1", "t")
    mf = live["metadata"]["managedFields"]
    assert mf[0]["manager"] == "wizard" and mf[0]["operation"] == "Apply"
    assert "f:x" in mf[0]["fieldsV1"]["f:data"]
    live["data"]["z"] = "someone else's"
    second = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "1"}},
              "data": {"x": "9"}}
    out = P.server_side_apply(live, second, "wizard", "v1", "t2")
    assert out["data"] == {"x": "9", "z": "someone else's"}  # y dropped by its manager, z kept
    assert out["metadata"]["labels"] == {"a": "1"}
    assert len(out["metadata"]["managedFields"]) == 1


def test_jsonpath_and_durations():
    obj = {"status": {"conditions": [{"type": "A", "status": "False"}, {"type": "Ready", "status": "True"}],
                      "addresses": [{"url": "u1"}, {"url": "u2"}]}, "spec": {"n": 3}}
    assert jsonpath(obj, ".status.conditions[?(@.type=='Ready')].status") == ["True"]
    assert jsonpath(obj, ".status.addresses[*].url") == ["u1", "u2"]
    assert jsonpath(obj, ".spec.n") == [3]
    assert jsonpath(obj, ".spec.missing") == []
    assert [human_duration(s) for s in (5, 119, 150, 600, 3600 * 5 + 60, 3600 * 30, 86400 * 3 + 3600)] == \
        ["5s", "119s", "2m30s", "10m", "5h1m", "30h", "3d1h"]


def test_table_for_crd_printer_columns():
    store = Store()
    crd_t = store.type_for("customresourcedefinitions", "apiextensions.k8s.io")
    crd = store.create(crd_t, {"metadata": {"name": "things.ex.io"}, "spec": {
        "group": "ex.io", "scope": "Namespaced", "names": {"plural": "things", "kind": "Thing"},
        "versions": [{"name": "v1", "served": True, "storage": True, "additionalPrinterColumns": [
            {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].status"},
            {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
            {"name": "Hidden", "type": "string", "jsonPath": ".spec.x", "priority": 1}]}]}})
    assert crd["status"]["conditions"][1]["type"] == "Established"
    rt = store.resolve("ex.io", "v1", "things")
    maker = TableMaker(rt, crd)
    assert [c["name"] for c in maker.columns] == ["Name", "Ready", "Replicas", "Hidden"]
    row = maker.row({"metadata": {"name": "t"}, "spec": {"replicas": 2},
                     "status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    assert row["cells"] == ["t", "True", 2, None]
    assert row["object"]["kind"] == "PartialObjectMetadata"


def test_tls_material_verifies_for_ip_and_localhost():
    tls = make_tls(("127.0.0.1", "localhost"))
    cert = x509.load_pem_x509_certificate(tls.cert_pem.encode())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1"}
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert isinstance(tls.server_context(), ssl.SSLContext)
    # persisted as strings and rebuilt (what the world does)
    again = TlsMaterial(ca_pem=tls.ca_pem, cert_pem=tls.cert_pem.encode(), key_pem=tls.key_pem)
    assert again.ca_b64 == tls.ca_b64 and isinstance(again.cert_pem, str)
