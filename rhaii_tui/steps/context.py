"""StepContext: what every step works with. The config, the connection profile, the state store,
the secrets the user entered (memory only), and lazily: the GKE client, the cluster, and a
KubeSession for it (cached; dropped when the cluster vanishes or its endpoint/CA change).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from ..cloud.gke import CloudError, ClusterInfo, Gke
from ..cloud.kube import KubeSession
from ..cloud.profile import ConnectionProfile
from ..config import DeployConfig, StateStore
from ..secrets import SecretsInput
from ..transcript import Recorder, transcript_path

log = logging.getLogger(__name__)

# Remembered state is only trusted in the environment it was remembered in: the state file names
# it (ENV_KEY, "project-number:N" from Resource Manager: a new world or a re-created project with
# the same id has another number). Only the user's configuration is kept across environments.
ENV_KEY = "environment"
SHARED_KEYS = ("config", "saved_at", ENV_KEY)
ENV_RETRY_SECONDS = 15.0  # how long a failed identity read is not retried


class StepContext:
    def __init__(self, cfg: DeployConfig, profile: ConnectionProfile, state_store: StateStore | None = None,
                 *, secrets: SecretsInput | None = None, cluster_max_age: float = 3.0) -> None:
        self.cfg = cfg
        self.profile = profile
        self.state_store = state_store
        self.secrets = secrets or SecretsInput()
        self.cluster_max_age = cluster_max_age
        self._lock = threading.RLock()
        self._gke: Gke | None = None
        self._gke_key: tuple[str, str] | None = None
        self._cluster: ClusterInfo | None = None
        self._cluster_at = 0.0
        self._cluster_key: tuple[str, str, str] | None = None
        self._kube: KubeSession | None = None
        self._kube_key: tuple[str, str] | None = None
        self._transcript: Recorder | None = None
        self._transcript_key: tuple[str, str, str] | None = None
        self._step = ""
        self._env: tuple[str, str | None, float] | None = None  # (project, identity, monotonic time read)
        self.state_note = ""  # why remembered values were ignored (another environment), for the pages
        self.memo: dict[str, Any] = {}  # a step's short-lived results (e.g. step 9's last quick checks)

    # config ---------------------------------------------------------------------------------------
    def set_config(self, cfg: DeployConfig) -> None:
        with self._lock:
            self.cfg = cfg
            self.memo.clear()
            self.invalidate()

    # transcript: every change made, per target ----------------------------------------------------
    @property
    def transcript(self) -> Recorder:
        """The recorder of this target's changes (the state directory's transcripts/<target>.jsonl;
        in memory only without a state store)."""
        with self._lock:
            key = (self.cfg.project, self.cfg.zone, self.cfg.cluster)
            if self._transcript is None or self._transcript_key != key:
                path = (transcript_path(self.state_store.root, *key) if self.state_store is not None else None)
                self._transcript = Recorder(path, secrets=lambda: self.secrets.values(), target="/".join(key))
                self._transcript_key = key
            self._transcript.step = self._step
            return self._transcript

    @property
    def step(self) -> str:
        """The step being run (the transcript names it), e.g. "2. Cluster and TPU node pool"."""
        return self._step

    @step.setter
    def step(self, value: str) -> None:
        with self._lock:
            self._step = value or ""
            if self._transcript is not None:
                self._transcript.step = self._step

    # GKE -----------------------------------------------------------------------------------------
    @property
    def gke(self) -> Gke:
        with self._lock:
            key = (self.cfg.project, self.cfg.zone)
            if self._gke is None or self._gke_key != key:
                self._gke = Gke(self.profile, self.cfg.project, self.cfg.zone)
                self._gke_key = key
            self._gke.recorder = self.transcript
            return self._gke

    def cluster(self, refresh: bool = False) -> ClusterInfo | None:
        """The configured cluster (None when it does not exist). Cached for a few seconds."""
        key = (self.cfg.project, self.cfg.zone, self.cfg.cluster)
        with self._lock:
            fresh = (time.monotonic() - self._cluster_at) < self.cluster_max_age
            if not refresh and fresh and self._cluster_key == key:
                return self._cluster
        info = self.gke.get_cluster(self.cfg.cluster)  # raises CloudError
        with self._lock:
            self._cluster, self._cluster_at, self._cluster_key = info, time.monotonic(), key
            if info is None or not info.endpoint:
                self._drop_kube()
        return info

    # Kubernetes ------------------------------------------------------------------------------------
    def kube(self, refresh: bool = False) -> KubeSession:
        """A session for the cluster's Kubernetes API. CloudError(not_found) when there is no cluster
        yet, CloudError(conflict) while it has no endpoint."""
        info = self.cluster(refresh=refresh)
        if info is None:
            raise CloudError("not_found", f"Cluster {self.cfg.cluster} does not exist in {self.cfg.zone}.",
                             "Create it in step 2 (or check the cluster name and zone).")
        if not info.endpoint:
            raise CloudError("conflict", f"Cluster {info.name} has no API endpoint yet (status {info.status}).",
                             "Wait until step 2 shows the cluster RUNNING.")
        key = (info.endpoint, info.ca_cert_b64)
        with self._lock:
            if self._kube is not None and self._kube_key == key:
                self._kube.recorder = self.transcript
                return self._kube
        # Built outside the lock: it fetches a token, and a failed refresh tells the credentials
        # listeners, which may wait for the UI thread -- itself perhaps waiting for this lock
        # (a config save calls set_config). Then swapped in.
        session = KubeSession(self.profile, info.access)
        session.recorder = self.transcript
        with self._lock:
            if self._kube is not None and self._kube_key == key:
                spare, session = session, self._kube  # another thread built one meanwhile: keep it
            else:
                spare, self._kube, self._kube_key = self._kube, session, key
        if spare is not None:
            spare.close()
        return session

    def kube_or_none(self) -> KubeSession | None:
        try:
            return self.kube()
        except CloudError as e:
            if e.kind in ("not_found", "conflict"):
                return None
            raise

    def _drop_kube(self) -> None:
        if self._kube is not None:
            self._kube.close()
        self._kube = None
        self._kube_key = None

    def invalidate(self) -> None:
        """Forget the cached cluster and session (the next call reads them again)."""
        with self._lock:
            self._cluster = None
            self._cluster_at = 0.0
            self._cluster_key = None
            self._drop_kube()

    # environment identity ----------------------------------------------------------------------------
    def environment(self) -> str | None:
        """Who the project is: "project-number:N" from Resource Manager (None while it cannot be
        read). Cached per project id; a failed read is tried again after a few seconds."""
        project = self.cfg.project
        with self._lock:
            env = self._env
            if env is not None and env[0] == project and (
                    env[1] is not None or time.monotonic() - env[2] < ENV_RETRY_SECONDS):
                return env[1]
        ident: str | None = None
        try:
            from ..cloud.projects import get_project

            number = get_project(self.profile, project).number
            ident = f"project-number:{number}" if number else None
        except Exception as e:  # noqa: BLE001 - no identity: remembered values are simply not trusted
            log.info("could not read the identity of project %s: %s", project, e)
        with self._lock:
            self._env = (project, ident, time.monotonic())
        return ident

    # state file (never secrets) --------------------------------------------------------------------
    def saved(self) -> dict[str, Any]:
        """The target's remembered state. Values remembered in another environment (another project
        number behind the same project id, or one that cannot be identified now) are left out, and
        `state_note` says so; the configuration is always kept."""
        if self.state_store is None:
            return {}
        data = self.state_store.load(self.cfg.project, self.cfg.zone, self.cfg.cluster)
        remembered = [k for k in data if k not in SHARED_KEYS]
        if not remembered:
            return data
        here = self.environment()
        there = data.get(ENV_KEY)
        if here is not None and there == here:
            return data
        if here is None:
            note = ("Remembered results were not used: the project's identity could not be read, so they may "
                    "come from another environment.")
        else:
            note = (f"Remembered results from another environment ({there or 'not identified'}; this one is "
                    f"{here}) were ignored: everything is checked again here.")
        if note != self.state_note:
            log.info("%s (%s)", note, ", ".join(sorted(remembered)))
        self.state_note = note
        return {k: v for k, v in data.items() if k in SHARED_KEYS}

    def record(self, **values: Any) -> None:
        """Remember choices/timestamps for this target, in this environment (what was remembered in
        another one is dropped). Best effort: a full disk never fails a step."""
        if self.state_store is None:
            return
        try:
            here = self.environment()
            if here is None:  # a value nobody could trust later; and what is remembered stays as it is
                log.warning("not remembered (the project's identity could not be read): %s", ", ".join(values))
                return
            data = self.state_store.load(self.cfg.project, self.cfg.zone, self.cfg.cluster)
            if data and data.get(ENV_KEY) != here:
                self.state_store.forget(self.cfg)
            self.state_store.update(self.cfg, **values, **{ENV_KEY: here})
        except (OSError, ValueError) as e:
            log.warning("could not write the state file: %s", e)


__all__ = ["StepContext", "ENV_KEY"]
