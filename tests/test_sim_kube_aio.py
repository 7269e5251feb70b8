"""The emulated Kubernetes API driven by `kubernetes.aio` (the wizard's watches and log follows)."""

from __future__ import annotations

import asyncio
import json

import pytest
from kubernetes.aio import client as aclient
from kubernetes.aio import watch as awatch

from kubehelpers import kube, running_pod  # noqa: F401 - fixture


@pytest.mark.asyncio
async def test_aio_crud_errors_and_patches(kube):
    async with aclient.ApiClient(kube.aio_configuration()) as api:
        v1, apps = aclient.CoreV1Api(api), aclient.AppsV1Api(api)
        ns = await v1.list_namespace()
        assert [n.metadata.name for n in ns.items] == ["default"]
        await v1.create_namespaced_config_map("default", {"metadata": {"name": "a"}, "data": {"x": "1"}})
        with pytest.raises(aclient.exceptions.ApiException) as e:
            await v1.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
        assert e.value.status == 409 and json.loads(e.value.body)["reason"] == "AlreadyExists"
        cm = await v1.patch_namespaced_config_map("a", "default", {"data": {"y": "2"}})
        assert cm.data == {"x": "1", "y": "2"}
        d = await apps.patch_namespaced_deployment(
            "vllm", "default",
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "vllm"},
             "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "vllm"}},
                      "template": {"metadata": {"labels": {"app": "vllm"}},
                                   "spec": {"containers": [{"name": "main", "image": "vllm:1"}]}}}},
            field_manager="wizard", force=True, _content_type="application/apply-patch+yaml")
        assert d.spec.replicas == 3 and d.metadata.managed_fields[0].manager == "wizard"
        with pytest.raises(aclient.exceptions.ApiException) as e:
            await v1.read_namespaced_pod("nope", "default")
        assert e.value.status == 404


@pytest.mark.asyncio
async def test_aio_watch_live_and_410(kube):
    async with aclient.ApiClient(kube.aio_configuration()) as api:
        v1 = aclient.CoreV1Api(api)
        await v1.create_namespaced_config_map("default", {"metadata": {"name": "before"}})
        rv = (await v1.list_namespaced_config_map("default")).metadata.resource_version
        seen = []

        async def consume():
            async with awatch.Watch() as w:
                async for e in w.stream(v1.list_namespaced_config_map, "default", resource_version=rv,
                                        timeout_seconds=5):
                    seen.append((e["type"], e["object"].metadata.name))
                    if len(seen) == 2:
                        w.stop()
                        break

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.2)
        await v1.create_namespaced_config_map("default", {"metadata": {"name": "after"}})
        await v1.delete_namespaced_config_map("after", "default")
        await asyncio.wait_for(task, 5)
        assert seen == [("ADDED", "after"), ("DELETED", "after")]

        kube.call(lambda: kube.store.compact(kube.rt("configmaps")))
        with pytest.raises(aclient.exceptions.ApiException) as e:
            async with awatch.Watch() as w:
                async for _ in w.stream(v1.list_namespaced_config_map, "default", resource_version=rv,
                                        timeout_seconds=2):
                    pass
        assert e.value.status == 410


@pytest.mark.asyncio
async def test_aio_log_follow_ends_when_container_terminates(kube):
    kube.create("pods", running_pod("vllm-0"), "default")
    kube.call(lambda: kube.logs.append("default", "vllm-0", "app", "INFO Starting vLLM"))
    async with aclient.ApiClient(kube.aio_configuration()) as api:
        v1 = aclient.CoreV1Api(api)
        resp = await v1.read_namespaced_pod_log_without_preload_content("vllm-0", "default", follow=True)
        lines = []

        async def feed():
            await asyncio.sleep(0.2)
            kube.call(lambda: kube.logs.append("default", "vllm-0", "app",
                                               "INFO Compiling XLA\nINFO Application startup complete."))
            await asyncio.sleep(0.1)
            kube.call(lambda: kube.logs.terminate("default", "vllm-0", "app"))

        feeder = asyncio.create_task(feed())
        async for raw in resp.content:
            lines.append(raw.decode().rstrip("\n"))
        await feeder
        resp.release()
        assert lines == ["INFO Starting vLLM", "INFO Compiling XLA", "INFO Application startup complete."]
        text = await v1.read_namespaced_pod_log("vllm-0", "default", tail_lines=1)
        assert text == "INFO Application startup complete.\n"
