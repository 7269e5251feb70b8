"""Run a simulated world inside a test (or a benchmark): `run_world(...)`.

    with run_world(tmp_path, scenario="cluster-ready", speed=2000) as w:
        gke = w.profile().gke()                     # real google-cloud-container client → the world
        w.endpoints["clusters"]                     # what endpoints.json says
        w.call(lambda: w.world.state_summary())     # run something on the world's event loop

The world runs on its own event loop in a background thread, listening on port 0 (a free port),
so tests on xdist workers never collide. Clients in the test thread talk to it over HTTP exactly as
the wizard does.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from .world import World


class WorldHandle:
    def __init__(self, world: World, loop: asyncio.AbstractEventLoop, thread: threading.Thread):
        self.world = world
        self.loop = loop
        self._thread = thread
        self._stopped = False

    @property
    def endpoints_file(self) -> Path:
        return self.world.endpoints_file

    @property
    def endpoints(self) -> dict:
        """endpoints.json as it is now."""
        return json.loads(self.endpoints_file.read_text())

    @property
    def state_dir(self) -> Path:
        return self.world.state_dir

    @property
    def token(self) -> str:
        return self.world.token

    @property
    def google_url(self) -> str:
        return self.world.google_url

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float = 60.0) -> Any:
        """Run fn(*args) on the world's loop (awaiting it when it returns an awaitable); return its result."""
        async def run() -> Any:
            res = fn(*args)
            if inspect.isawaitable(res):
                res = await res
            return res

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def profile(self):
        """A SimProfile on this world's endpoints.json (a new one each call)."""
        from ..cloud.profile import SimProfile

        return SimProfile(self.endpoints_file)

    def state(self) -> dict:
        return self.call(self.world.state_summary)

    def sim(self, key: str | None = None):
        """The ClusterSim of a cluster (the only one when key is None)."""
        return self.world.sim_for(key)

    def fast_forward(self, sim_seconds: float) -> None:
        """Let simulated time jump ahead (operations and controllers)."""
        self.call(self.world.fast_forward, sim_seconds)

    def wait_until(self, predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02,
                   message: str = "condition") -> Any:
        """Poll predicate() on the world's loop until it is truthy; return its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.call(predicate)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:g} s waiting for {message}")
            time.sleep(interval)

    def stop(self, save: bool = True) -> None:
        """Stop the world (save=False: as if the process was killed, keeping only what was already
        persisted) and its loop thread. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        try:
            asyncio.run_coroutine_threadsafe(self.world.stop(save=save), self.loop).result(30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            if not self.loop.is_running():
                self.loop.close()


@contextlib.contextmanager
def run_world(state_dir: str | Path, scenario: str = "fresh", speed: float = 2000, plain_http: bool = False,
              *, project: str | None = None, **overrides: Any) -> Iterator[WorldHandle]:
    """A world on a background event loop, listening on free loopback ports. Extra keyword
    arguments override scenario knobs (e.g. start_state="cluster-ready", quota_chips=4)."""
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def runner() -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(started.set)
        loop.run_forever()

    thread = threading.Thread(target=runner, name="sim-world", daemon=True)
    thread.start()
    started.wait(5)
    world = World(state_dir, scenario, speed, plain_http=plain_http, project=project, overrides=overrides)
    handle = WorldHandle(world, loop, thread)
    try:
        asyncio.run_coroutine_threadsafe(world.start(), loop).result(60)
    except BaseException:
        handle.stop(save=False)
        raise
    try:
        yield handle
    finally:
        handle.stop()


EXAMPLE_HF_TOKEN = "hf_" + "a1B2c3D4" * 4 + "zz"


def write_secret_files(directory: Path, token: str = EXAMPLE_HF_TOKEN) -> tuple[Path, Path]:
    """An HF token file and a filled-in pull-secret YAML in `directory`, as `apply --hf-token-file
    --pull-secret-file` take them (the simulated cloud accepts any well-formed values)."""
    import base64

    hf = directory / "hf-token"
    hf.write_text(token + "\n")
    auth = base64.b64encode(b"someone:not-a-real-password").decode()
    pull = directory / "pull.yaml"
    pull.write_text("apiVersion: v1\nkind: Secret\nmetadata:\n  name: rhaiis-pull-secret\n"
                    "type: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: |\n"
                    f'    {{"auths": {{"registry.redhat.io": {{"auth": "{auth}"}}}}}}\n')
    return hf, pull
