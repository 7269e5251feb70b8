"""The connection profile: endpoints + credentials, the one place that knows real from simulated.

Everything else asks the profile for a client and never checks which mode it is in.

Real mode (`GcpProfile`): Application Default Credentials (`google.auth.default()`), Google's own
endpoints, and for Kubernetes the cluster's endpoint + CA + an OAuth access token (what
gke-gcloud-auth-plugin does; no gcloud needed), or an existing kubeconfig context.

Simulated mode (`SimProfile`): the emulator's endpoints from its `endpoints.json`, and the token
it accepts. The Kubernetes side is the same HTTPS + CA + bearer path as real GKE.

Expired or revoked credentials mid-run: the cloud layer reports each 401 (and each failed token
refresh) with `report_credentials_failure()`; the app listens (`add_credentials_listener`) and
offers to sign in again. `reauthenticate()` drops cached credentials and clients, loads them afresh
and proves them with one cheap call; `reauth_hint` says what the user does first. Every client
takes the current token at request time, so nothing has to be rebuilt by hand afterwards.

Client libraries are imported lazily: importing them all costs ~1.5 s and the wizard must start
instantly.
"""

from __future__ import annotations

import base64
import json
import os
import re
import tempfile
import logging
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
KUBE_POOL_SIZE = 64  # connections kept per cluster client (see kube_configuration)

GOOGLE_API_BASES = {
    "container": "https://container.googleapis.com",
    "cloudresourcemanager": "https://cloudresourcemanager.googleapis.com",
    "cloudquotas": "https://cloudquotas.googleapis.com",
    "serviceusage": "https://serviceusage.googleapis.com",
    "compute": "https://compute.googleapis.com",
}


class CredentialsError(Exception):
    """No usable credentials, or they expired/were revoked. The message says what to do."""


# --- credentials failures and renewals, seen from anywhere in the cloud layer -------------------------
#
# Where a 401 is mapped (gke.map_error/http_error, kube.kube_error, the list-watch loop, the log
# follower) the cloud layer calls `report_credentials_failure(message)`; every profile with a
# listener (the app registers one) hears it. `reauthenticate()` bumps a generation counter that
# waiting watches poll, so they reconnect at once instead of after their back-off.

_LISTENING: "weakref.WeakSet[ConnectionProfile]" = weakref.WeakSet()
_generation_lock = threading.Lock()
_generation = 0


def credentials_generation() -> int:
    """A counter bumped by every successful `reauthenticate()` (any profile)."""
    return _generation


def _bump_generation() -> None:
    global _generation
    with _generation_lock:
        _generation += 1


def wait_for_renewal(since: int, timeout: float, stop: threading.Event | None = None,
                     poll: float = 0.2) -> bool:
    """Sleep up to `timeout` seconds, returning early (True) once credentials were renewed after
    generation `since`; False when the time ran out or `stop` was set."""
    deadline = time.monotonic() + max(0.0, timeout)
    while True:
        if _generation != since:
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        if stop is not None:
            if stop.wait(min(poll, remaining)):
                return False
        else:
            time.sleep(min(poll, remaining))


def report_credentials_failure(message: str, profile: "ConnectionProfile | None" = None) -> None:
    """A credentials failure (401, refresh failed) happened: tell the listeners of `profile`, or
    of every profile that has listeners. Never raises; `message` must not contain a secret."""
    targets = [profile] if profile is not None else list(_LISTENING)
    for p in targets:
        p._notify_credentials_failure(message)


def transient_auth_error(exc: BaseException) -> bool:
    """A google-auth failure that says nothing about the credentials: the token endpoint could not
    be reached (TransportError) or answered with a retryable error (RefreshError.retryable)."""
    try:
        from google.auth import exceptions as aexc
    except ImportError:  # pragma: no cover - always installed
        return False
    if isinstance(exc, aexc.TransportError):
        return True
    return isinstance(exc, aexc.GoogleAuthError) and bool(getattr(exc, "retryable", False))


NETWORK_FIX = ("Check this machine's network connection and DNS. Behind a corporate proxy, set HTTPS_PROXY "
               "(and NO_PROXY for hosts reached directly); if the proxy inspects TLS, point REQUESTS_CA_BUNDLE at "
               "its CA. Your credentials are fine: no new login is needed.")

_NET_KINDS = (  # (pattern in the exception chain, what the user is told)
    (r"NameResolutionError|Name or service not known|nodename nor servname|getaddrinfo failed|"
     r"Temporary failure in name resolution|No address associated", "its name could not be resolved (DNS)"),
    (r"ProxyError|Unable to connect to proxy|Tunnel connection failed|407 Proxy", "the proxy refused or failed"),
    (r"SSLError|CERTIFICATE_VERIFY_FAILED|certificate verify failed|SSL:", "the TLS handshake failed"),
    (r"Connection refused|ConnectionRefusedError|Errno 111", "the connection was refused"),
    (r"Connection reset|ConnectionResetError|Errno 104|RemoteDisconnected|Connection aborted",
     "the connection was reset"),
    (r"timed out|Timeout|ConnectTimeout", "the connection timed out"),
    (r"Network is unreachable|No route to host|Errno 101|Errno 113", "the network is unreachable"),
)


def _chain_text(exc: BaseException) -> str:
    parts, seen, todo = [], set(), [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen or len(seen) > 12:
            continue
        seen.add(id(e))
        parts.append(f"{type(e).__name__}: {e!r}")
        todo += [e.__cause__, e.__context__, getattr(e, "reason", None)]
        todo += [a for a in getattr(e, "args", ()) if isinstance(a, BaseException)]
    return " | ".join(parts)


def network_problem(exc: BaseException) -> tuple[str, str] | None:
    """(host, why) when `exc` says a host could not be reached (DNS, refused, reset, TLS, proxy,
    timeout); None when it is something else (an HTTP answer, refused credentials)."""
    text = _chain_text(exc)
    why = next((w for pat, w in _NET_KINDS if re.search(pat, text)), None)
    if why is None:
        return None
    m = (re.search(r"host='([^']+)'", text) or re.search(r"Failed to resolve '([^']+)'", text)
         or re.search(r"https?://([^/:'\" ]+)", text))
    return (m.group(1) if m else "the Google API endpoint"), why


def cannot_reach_google(exc: BaseException):  # -> gke.CloudError (imported late: gke imports this module)
    """The CloudError for a token refresh that keeps failing for a network reason."""
    from .gke import CloudError

    found = network_problem(exc)
    if found is not None:
        host, why = found
        return CloudError("unavailable", f"Cannot reach Google ({host}): {why}. The access token could not be "
                          "refreshed.", NETWORK_FIX, host=host, network=why)
    detail = " ".join(str(exc).split())[:160]
    return CloudError("unavailable", f"Cannot reach Google to refresh the access token ({type(exc).__name__}"
                      + (f": {detail}" if detail else "") + ").",
                      "Check your network connection; the wizard retries on its own (no new login is needed).")


@dataclass
class ClusterAccess:
    """What it takes to reach one cluster's Kubernetes API."""

    endpoint: str  # "host:port" or "https://host:port"
    ca_cert_b64: str | None = None  # masterAuth.clusterCaCertificate
    insecure: bool = False


def _remove_files(paths: dict[str, str]) -> None:
    for path in paths.values():
        try:
            os.unlink(path)
        except OSError:
            pass


class ConnectionProfile:
    """Base class. Subclasses set `simulated` and `label` and implement credentials/endpoints."""

    simulated: bool = False
    label: str = "Google Cloud"
    time_scale: float = 1.0
    """How many seconds of guide time pass per wall second (1.0 on a real cloud). Screens use it
    to compare how long a stage has taken with the guide's expected durations."""

    clock_kind: str = "wall"
    """The cloud's clock that `cloud_now()` reads: "wall" on Google, "simulated" in the emulator."""

    reauth_hint: str = "Sign in again, then press Retry."
    """What the user does to get fresh credentials (shown with the Retry button)."""

    token_refresh_attempts: int = 3
    """Tries of a token refresh that fails for a network reason (then: "cannot reach Google")."""
    token_retry_delay: float = 0.5
    """Seconds before the second try (doubling)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}
        self._ca_files: dict[str, str] = {}
        weakref.finalize(self, _remove_files, self._ca_files)  # at exit or when the profile goes
        self._listeners: list[Callable[[str], None]] = []

    def cloud_now(self) -> float:
        """Seconds on the cloud's clock (only differences mean anything): the wall clock on Google.
        Durations measured with it (apply's timing) are in the cloud's time."""
        return time.time()

    # --- credentials -------------------------------------------------------------------------
    def credentials(self):  # -> google.auth.credentials.Credentials
        raise NotImplementedError

    def _reset_credentials(self) -> None:
        """Forget cached credentials (subclasses)."""

    def _prove_credentials(self, token: str) -> None:
        """One cheap authenticated call; raises CredentialsError (with the fix) when refused."""

    def reauthenticate(self) -> None:
        """Drop cached credentials and clients, load them afresh and prove them with one cheap
        authenticated call. Raises CredentialsError (message says what to do) when they still do
        not work. On success, waiting watches reconnect at once. Blocking: call from a thread."""
        with self._lock:
            self._clients.clear()
            self._reset_credentials()
        token = self.access_token()
        if not token:
            raise CredentialsError(f"No access token is available. {self.reauth_hint}")
        self._prove_credentials(token)
        _bump_generation()

    def add_credentials_listener(self, callback: Callable[[str], None]) -> None:
        """`callback(message)` is called (from any thread) when a credentials failure is reported."""
        with self._lock:
            if callback not in self._listeners:
                self._listeners.append(callback)
            _LISTENING.add(self)

    def remove_credentials_listener(self, callback: Callable[[str], None]) -> None:
        with self._lock:
            if callback in self._listeners:
                self._listeners.remove(callback)
            if not self._listeners:
                _LISTENING.discard(self)

    def _notify_credentials_failure(self, message: str) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for cb in listeners:
            try:
                cb(message)
            except Exception:  # noqa: BLE001 - a listener must never break the caller
                log.exception("credentials listener failed")

    def access_token(self) -> str:
        """A current OAuth access token (refreshed when needed). Never log it."""
        creds = self.credentials()
        if not getattr(creds, "valid", False) or not getattr(creds, "token", None):
            import google.auth.exceptions
            import google.auth.transport.requests

            delay = self.token_retry_delay
            for attempt in range(self.token_refresh_attempts):
                try:
                    creds.refresh(google.auth.transport.requests.Request())
                    break
                except google.auth.exceptions.GoogleAuthError as e:
                    if not transient_auth_error(e):
                        message = ("Your Google credentials could not be refreshed (expired or revoked). "
                                   "Run: gcloud auth application-default login, then retry.")
                        self._notify_credentials_failure(message)
                        raise CredentialsError(message) from e
                    # a network blip (flaky wifi, a 5xx of the token endpoint): not a login matter
                    if attempt + 1 >= self.token_refresh_attempts:
                        raise cannot_reach_google(e) from None
                    time.sleep(delay)
                    delay *= 2
        return creds.token

    def identity(self) -> str | None:
        """The account the credentials belong to, when known."""
        creds = self.credentials()
        return getattr(creds, "service_account_email", None) or getattr(creds, "account", None) or None

    def quota_project(self) -> str | None:
        """The credentials' quota project (`gcloud auth application-default set-quota-project`), sent
        as `x-goog-user-project`; None when they have none. The client libraries send it themselves
        (google-auth's `apply()`); `rest()` adds it too."""
        return getattr(self.credentials(), "quota_project_id", None) or None

    # --- Google API endpoints ----------------------------------------------------------------
    def api_base(self, service: str) -> str:
        """Base URL of a Google REST API (container, cloudresourcemanager, cloudquotas,
        serviceusage, compute)."""
        return GOOGLE_API_BASES[service]

    def _client_options(self, service: str):
        from google.api_core.client_options import ClientOptions

        base = self.api_base(service)
        if base == GOOGLE_API_BASES[service]:
            return None
        return ClientOptions(api_endpoint=base)

    def _cached(self, key: str, factory):
        with self._lock:
            if key not in self._clients:
                self._clients[key] = factory()
            return self._clients[key]

    def gke(self):
        """google.cloud.container_v1.ClusterManagerClient (REST transport)."""
        def make():
            from google.cloud import container_v1

            return container_v1.ClusterManagerClient(
                credentials=self.credentials(), transport="rest",
                client_options=self._client_options("container"))
        return self._cached("gke", make)

    def projects(self):
        """google.cloud.resourcemanager_v3.ProjectsClient (REST transport)."""
        def make():
            from google.cloud import resourcemanager_v3

            return resourcemanager_v3.ProjectsClient(
                credentials=self.credentials(), transport="rest",
                client_options=self._client_options("cloudresourcemanager"))
        return self._cached("projects", make)

    def quotas(self):
        """google.cloud.cloudquotas_v1.CloudQuotasClient (REST transport)."""
        def make():
            from google.cloud import cloudquotas_v1

            return cloudquotas_v1.CloudQuotasClient(
                credentials=self.credentials(), transport="rest",
                client_options=self._client_options("cloudquotas"))
        return self._cached("quotas", make)

    def rest(self, service: str):
        """An httpx.Client for a Google REST API without a client library here (serviceusage,
        compute): base_url set, bearer token attached per request."""
        import httpx

        profile = self

        class _Auth(httpx.Auth):
            def auth_flow(self, request):
                request.headers["Authorization"] = f"Bearer {profile.access_token()}"
                quota_project = profile.quota_project()
                if quota_project:
                    request.headers["x-goog-user-project"] = quota_project
                yield request

        return httpx.Client(base_url=self.api_base(service), auth=_Auth(), timeout=30.0)

    # --- Kubernetes --------------------------------------------------------------------------
    def _ca_file(self, ca_b64: str) -> str:
        with self._lock:
            if ca_b64 not in self._ca_files:
                fd, path = tempfile.mkstemp(prefix="rhaii-tui-ca-", suffix=".crt")
                with os.fdopen(fd, "wb") as f:
                    f.write(base64.b64decode(ca_b64))
                self._ca_files[ca_b64] = path
            return self._ca_files[ca_b64]

    def kube_configuration(self, access: ClusterAccess):
        """kubernetes.client.Configuration for a cluster: https + CA + bearer token that is
        refreshed before each request."""
        from kubernetes import client

        cfg = client.Configuration()
        endpoint = access.endpoint
        if not endpoint.startswith(("http://", "https://")):
            endpoint = f"https://{endpoint}"
        cfg.host = endpoint
        # Step 5 alone holds 2 log streams per replica and 4 watches open at once, besides the page
        # probes. The client's default pool (5 per CPU: 10 on 2 cores) is smaller: urllib3 would then
        # discard connections after each use and open new ones (a TLS handshake per request).
        cfg.connection_pool_maxsize = max(cfg.connection_pool_maxsize or 0, KUBE_POOL_SIZE)
        if access.ca_cert_b64:
            cfg.ssl_ca_cert = self._ca_file(access.ca_cert_b64)
        if access.insecure:
            cfg.verify_ssl = False
        profile = self

        def refresh(c) -> None:
            c.api_key["BearerToken"] = f"Bearer {profile.access_token()}"

        cfg.api_key = {"BearerToken": f"Bearer {self.access_token()}"}
        cfg.refresh_api_key_hook = refresh
        return cfg

    def kube_api_client(self, access: ClusterAccess):
        from kubernetes import client

        return client.ApiClient(self.kube_configuration(access))

    # --- data plane and operators ------------------------------------------------------------
    def gateway_base_url(self, address: str, cluster_key: str | None = None) -> str:
        """Base URL for the inference gateway at `address` (its status address)."""
        return f"http://{address}"

    def install_operators(self, cluster_key: str, installer_dir: str | None = None) -> "OperatorInstall":
        """Start the operator install for a cluster. Real mode runs the upstream rhaii-on-xks
        installer from a local checkout (the one allowed subprocess)."""
        if not installer_dir:
            raise CredentialsError(
                "To install the operators, point the wizard at a local checkout of "
                "https://github.com/opendatahub-io/rhaii-on-xks (the installer needs helm, helmfile "
                "and kubectl), or run the commands shown in the commands panel yourself.")
        return OperatorInstall(command=["make", "deploy-all"], cwd=installer_dir)

    def describe(self) -> str:
        return self.label


@dataclass
class OperatorInstall:
    """How the operator install was started: a command the screen may stream, or nothing to run
    (the install happens on the cluster side)."""

    command: list[str] | None = None
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    message: str = ""


class GcpProfile(ConnectionProfile):
    """Real Google Cloud via Application Default Credentials."""

    simulated = False
    label = "Google Cloud"
    reauth_hint = "Run `gcloud auth application-default login` in another terminal, then press Retry."

    def __init__(self) -> None:
        super().__init__()
        self._creds = None
        self.adc_project: str | None = None

    def _reset_credentials(self) -> None:
        self._creds = None

    def _prove_credentials(self, token: str) -> None:
        """Google's tokeninfo endpoint: accepts the token (200) or says it is invalid (400)."""
        import httpx

        try:
            r = httpx.post("https://oauth2.googleapis.com/tokeninfo", data={"access_token": token}, timeout=15.0)
        except httpx.HTTPError as e:
            raise CredentialsError(f"Could not reach Google to check the new credentials ({type(e).__name__}). "
                                   "Check your network, then press Retry.") from None
        if r.status_code >= 400:
            raise CredentialsError("Google does not accept the credentials (expired or revoked). "
                                   + self.reauth_hint)

    def credentials(self):
        if self._creds is None:
            import google.auth
            import google.auth.exceptions

            try:
                self._creds, self.adc_project = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
            except google.auth.exceptions.DefaultCredentialsError as e:
                raise CredentialsError(
                    "No Application Default Credentials found. Run: gcloud auth application-default "
                    "login (or set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file).") from e
        return self._creds


class SimProfile(ConnectionProfile):
    """The built-in simulated cloud (`--sim`): endpoints from the emulator's endpoints.json."""

    simulated = True
    label = "SIMULATED"
    reauth_hint = ("Run `rhaii-tui sim login` in another terminal (the simulated "
                   "`gcloud auth application-default login`), then press Retry.")

    def __init__(self, endpoints_file: str | Path):
        super().__init__()
        self.endpoints_file = Path(endpoints_file)
        self._creds = None

    def _reset_credentials(self) -> None:
        self._creds = None

    def _prove_credentials(self, token: str) -> None:
        """Read the world's project with the token (the Resource Manager API): 401 = refused."""
        import httpx

        ep = self.endpoints
        base = str(ep.get("google_api", "")).rstrip("/")
        project = ep.get("project") or "-"
        try:
            r = httpx.get(f"{base}/v3/projects/{project}", headers={"Authorization": f"Bearer {token}"},
                          timeout=10.0)
        except httpx.HTTPError as e:
            raise CredentialsError(f"The simulated cloud does not answer ({type(e).__name__}). Start it with: "
                                   "rhaii-tui --sim (or rhaii-tui sim serve), then press Retry.") from None
        if r.status_code == 401:
            raise CredentialsError("The simulated cloud still refuses the access token (expired or revoked). "
                                   + self.reauth_hint)

    @property
    def endpoints(self) -> dict[str, Any]:
        try:
            return json.loads(self.endpoints_file.read_text())
        except (OSError, ValueError) as e:
            raise CredentialsError(
                f"The simulated environment is not running (cannot read {self.endpoints_file}). "
                "Start it with: rhaii-tui --sim (or rhaii-tui sim serve).") from e

    def credentials(self):
        if self._creds is None:
            self._creds = _ProfileToken(self)
        return self._creds

    def access_token(self) -> str:
        return self.endpoints.get("token", "")

    @property
    def time_scale(self) -> float:  # type: ignore[override]
        try:
            return float(self.endpoints.get("speed", 1.0))
        except (TypeError, ValueError, CredentialsError):
            return 1.0

    clock_kind = "simulated"

    def cloud_now(self) -> float:
        """The emulator's simulated clock (its `/_emu/clock`): guide durations, not wall seconds.
        If the emulator cannot say, the wall clock times its speed (the same model)."""
        import httpx

        control = self.endpoints.get("control") or (self.endpoints["google_api"].rstrip("/") + "/_emu")
        try:
            r = httpx.get(f"{control}/clock", timeout=5.0, headers={"Authorization": f"Bearer {self.access_token()}"})
            if r.status_code < 400:
                return float(r.json()["now_s"])
        except Exception:  # noqa: BLE001 - a clock read never takes the caller down
            pass
        return time.time() * self.time_scale

    def identity(self) -> str | None:
        return self.endpoints.get("account", "demo-user@example.com")

    def adc_quota_project(self) -> str | None:
        """The simulated ADC's quota project, as the emulator describes its credentials."""
        creds = self.endpoints.get("credentials") or {}
        return (creds.get("quota_project_id") or None) if isinstance(creds, dict) else None

    def api_base(self, service: str) -> str:
        return self.endpoints["google_api"].rstrip("/")

    def gateway_base_url(self, address: str, cluster_key: str | None = None) -> str:
        clusters = self.endpoints.get("clusters", {})
        entry = clusters.get(cluster_key or "") if cluster_key else None
        if entry is None and len(clusters) == 1:
            entry = next(iter(clusters.values()))
        if entry and entry.get("gateway_url"):
            return entry["gateway_url"].rstrip("/")
        return f"http://{address}"

    def install_operators(self, cluster_key: str, installer_dir: str | None = None) -> OperatorInstall:
        """In the simulated cloud the installer's effect is triggered through the emulator's
        control API; the cluster side then behaves as after the upstream installer ran."""
        import httpx

        control = self.endpoints.get("control") or (self.endpoints["google_api"].rstrip("/") + "/_emu")
        r = httpx.post(f"{control}/clusters/{cluster_key}/install-operators", timeout=10.0,
                       headers={"Authorization": f"Bearer {self.access_token()}"})
        if r.status_code >= 400:
            raise CredentialsError(f"The simulated installer refused: {r.text[:200]}")
        return OperatorInstall(message="Operator install started (simulated rhaii-on-xks installer).")


def _ProfileToken(profile: ConnectionProfile):
    """google-auth credentials that take the profile's current token at each request (a new token
    written by `rhaii-tui sim login` is used at once by clients built earlier)."""
    from google.auth.credentials import Credentials

    class ProfileToken(Credentials):
        @property
        def quota_project_id(self):  # the ADC file's quota project, read like the token: at request time
            getter = getattr(profile, "adc_quota_project", None)
            return getter() if getter is not None else None

        def refresh(self, request) -> None:  # noqa: ARG002 - the profile knows the token
            self.token = profile.access_token()

        def before_request(self, request, method, url, headers) -> None:
            self.refresh(request)
            self.apply(headers)

    creds = ProfileToken()
    creds.token = profile.access_token()
    return creds


def cluster_key(project: str, location: str, cluster: str) -> str:
    """How the emulator's endpoints.json and control API name a cluster."""
    return f"{project}/{location}/{cluster}"
