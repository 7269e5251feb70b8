"""Unreachable Google, offline machines, corporate proxies: said as such (host, why, network fix), one
root cause said once, and HTTPS_PROXY / NO_PROXY honoured by the Google and Kubernetes clients."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from urllib.parse import urlsplit

import pytest

from rhaii_tui.cloud.gke import CloudError, map_error
from rhaii_tui.cloud.profile import GcpProfile
from rhaii_tui.config import DeployConfig, StateStore
from rhaii_tui.steps.base import Status
from rhaii_tui.steps.context import StepContext
from rhaii_tui.steps.registry import probe_all, summary

PROJECT = "rhaii-demo-project"
ZONE = "europe-west4-a"
CLUSTER = "rhaii-tpu-scaleout-cluster"
PROXY_VARS = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "all_proxy",
              "no_proxy")


@pytest.fixture(autouse=True)
def no_env_proxy(monkeypatch, tmp_path):
    for v in PROXY_VARS:
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv("RHAII_TUI_STATE_DIR", str(tmp_path / "state"))


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class OfflineProfile(GcpProfile):
    """Real mode with valid-looking authorized-user credentials whose token endpoint cannot be reached
    (an unresolvable name or a closed loopback port: never a real Google host)."""

    def __init__(self, token_uri: str) -> None:
        super().__init__()
        self.token_uri = token_uri
        self.token_refresh_attempts = 1

    def credentials(self):
        if self._creds is None:
            import google.oauth2.credentials as oc

            self._creds = oc.Credentials(None, refresh_token="not-a-real-refresh-token", client_id="c",
                                         client_secret="s", token_uri=self.token_uri)
        return self._creds


@pytest.mark.parametrize("uri, host, why", [
    ("https://nowhere.invalid/token", "nowhere.invalid", "DNS"),
    ("https://127.0.0.1:{port}/token", "127.0.0.1", "refused"),  # the port is found at run time: the
])                                                                # test ids must be the same on every worker
def test_an_unreachable_google_is_said_as_such_not_as_refused_credentials(uri, host, why):
    prof = OfflineProfile(uri.format(port=closed_port()) if "{port}" in uri else uri)
    with pytest.raises(CloudError) as ei:
        prof.access_token()
    e = ei.value
    assert e.kind == "unavailable"
    assert host in e.message and why in e.message
    assert "HTTPS_PROXY" in e.fix and "network" in e.fix
    assert "application-default login" not in e.fix and "refused or could not be refreshed" not in e.message


def test_a_refused_credential_still_says_log_in_again():
    from google.auth import exceptions as aexc

    e = map_error(aexc.RefreshError("invalid_grant: Token has been expired or revoked."))
    assert e.kind == "credentials" and "application-default login" in e.fix


def test_a_connection_error_to_an_api_names_the_host():
    import requests

    try:
        requests.get(f"http://127.0.0.1:{closed_port()}/v1/projects/x", timeout=5)
    except requests.RequestException as exc:
        e = map_error(exc)
    assert e.kind == "unavailable" and "127.0.0.1" in e.message and "refused" in e.message
    assert "HTTPS_PROXY" in e.fix


def test_status_says_the_cause_once_and_the_steps_are_unknown(capsys, monkeypatch):
    from rhaii_tui import headless

    prof = OfflineProfile("https://nowhere.invalid/token")
    ctx = StepContext(DeployConfig(project=PROJECT, zone=ZONE, cluster=CLUSTER, replicas=3), prof, StateStore())
    states = probe_all(ctx)
    unknown = [n for n, s in states.items() if s.status is Status.UNKNOWN]
    assert len(unknown) >= 8 and not any(s.status is Status.FAILED for s in states.values())
    standing = summary(states)
    assert len(standing.causes) == 1 and "nowhere.invalid" in standing.causes[0]["message"]
    out = headless.Output(as_json=True)
    from rhaii_tui.steps import registry

    monkeypatch.setattr(registry, "probe_all", lambda c, *a, **k: states)
    code = headless.run_status(ctx, out)
    doc = json.loads(capsys.readouterr().out)
    assert code == 1
    assert "nowhere.invalid" in doc["error"]["message"] and "HTTPS_PROXY" in doc["error"]["fix"]
    assert {s["status"] for s in doc["steps"] if s["number"] in unknown} == {"unknown"}
    assert sum(json.dumps(s).count("nowhere.invalid") for s in doc["steps"]) == 0   # said once, at the top
    text = headless.Output(as_json=False)
    headless.run_status(ctx, text)
    lines = capsys.readouterr().out
    assert lines.count("nowhere.invalid") == 1 and "unknown" in lines


# --- a corporate proxy ------------------------------------------------------------------------------


class Proxy:
    """A small HTTP proxy on loopback: CONNECT tunnels (https) and absolute-URL requests (plain http),
    counting what it forwarded."""

    def __init__(self) -> None:
        self.connects: list[str] = []
        self.forwards: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()
        assert self.ready.wait(30)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self.handle, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            line, *headers = head.decode("latin-1").split("\r\n")
            method, target, version = line.split(" ", 2)
            if method == "CONNECT":
                host, port = target.rsplit(":", 1)
                self.connects.append(target)
                up_r, up_w = await asyncio.open_connection(host, int(port))
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                u = urlsplit(target)
                self.forwards.append(target)
                up_r, up_w = await asyncio.open_connection(u.hostname, u.port or 80)
                keep = [h for h in headers if h and not h.lower().startswith(("connection:", "proxy-"))]
                path = (u.path or "/") + (f"?{u.query}" if u.query else "")
                up_w.write("\r\n".join([f"{method} {path} {version}", *keep, "Connection: close", "", ""])
                           .encode("latin-1"))
            await asyncio.gather(self.pipe(reader, up_w), self.pipe(up_r, writer))
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
        except OSError:
            pass
        finally:
            try:
                w.close()
            except OSError:
                pass

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture
def proxy():
    p = Proxy()
    yield p
    p.close()


def test_google_and_kubernetes_calls_go_through_https_proxy_and_no_proxy_goes_direct(make_sim_world, proxy,
                                                                                      monkeypatch):
    world = make_sim_world("cluster-ready")
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)

    def seen() -> int:
        return len(proxy.connects) + len(proxy.forwards)

    def use() -> tuple[int, int]:
        """(proxied Google calls, proxied Kubernetes calls)"""
        ctx = StepContext(DeployConfig(project=PROJECT, zone=ZONE, cluster=CLUSTER, replicas=3), world.profile(),
                          StateStore())
        n0 = seen()
        assert ctx.cluster(refresh=True) is not None                      # GKE (Google API)
        ctx.profile.access_token()                                         # (a fresh token: no refresh below)
        n1 = seen()
        assert ctx.kube().list("v1", "Namespace")                          # Kubernetes API (https)
        n2 = seen()
        ctx.invalidate()
        return n1 - n0, n2 - n1

    google, kube = use()
    assert google >= 1 and kube >= 1, (proxy.connects, proxy.forwards)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    assert use() == (0, 0)                                                 # direct, as NO_PROXY says


@pytest.mark.asyncio
async def test_the_load_engine_honours_http_proxy_and_no_proxy(fake, proxy, monkeypatch):
    from rhaii_tui.loadtest.engine import LoadSpec, run_load

    f = await fake(replicas=1)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    r = await run_load(LoadSpec(f.base_url, mode="open", rate=20, duration_s=0.5))
    assert r.ok == r.requests > 0
    through = len(proxy.forwards)
    assert through == r.requests and all(u.startswith(f.base_url) for u in proxy.forwards)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    r = await run_load(LoadSpec(f.base_url, mode="open", rate=20, duration_s=0.5))
    assert r.ok == r.requests > 0 and len(proxy.forwards) == through     # direct, as NO_PROXY says


def test_the_resume_summary_says_an_unreachable_cloud_once():
    from rhaii_tui.screens.resume import headline, standing_content
    from rhaii_tui.steps.base import StepState

    cause = {"kind": "unavailable", "message": "Cannot reach Google (nowhere.invalid): DNS.",
             "fix": "Check HTTPS_PROXY."}
    states = {n: StepState(Status.UNKNOWN, "Not read: " + cause["message"], fix=cause["fix"],
                           data={"error_kind": "unavailable", "cause": cause}) for n in range(1, 12)}
    standing = summary(states)
    assert standing.unknown == list(range(1, 12)) and not standing.failed
    text = standing_content(standing).plain
    assert "Could not read where the deployment stands" in headline(standing)
    assert text.count("nowhere.invalid") == 2 and text.count("Check HTTPS_PROXY") == 1   # headline + step 1
    assert "same cause as step 1" in text and "Nothing is deployed" not in text
