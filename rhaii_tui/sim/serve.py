"""`rhaii-tui sim serve` (run a world in the foreground) and the launcher behind `rhaii-tui --sim`.

`serve_main(state_dir, scenario, speed, host, port)` runs the world until Ctrl-C / SIGTERM, writing
DIR/endpoints.json, DIR/kubeconfig-<cluster> and DIR/gcloud (a gcloud config dir), and prints how
to point real gcloud/kubectl at it.

`ensure_world(state_dir, scenario, speed)` is what `--sim` calls: it reuses the world running on
that directory (pid alive and its API answering) or starts one as a detached background process
(`python -m rhaii_tui.sim.serve`, output in DIR/emulator.log) and waits for its endpoints.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator, TextIO

from ..cloud.profile import CredentialsError

ENDPOINTS_FILE = "endpoints.json"
STATE_FILE = "state.json"
LOCK_FILE = "world.lock"
LAUNCH_LOCK_FILE = "launch.lock"
LOG_FILE = "emulator.log"
START_TIMEOUT = 30.0


class SimWorldError(CredentialsError):
    """The simulated world cannot be started or reused. The message says what to do."""


def default_state_dir() -> Path:
    from ..config import state_dir

    return state_dir() / "sim"


# --- locks ----------------------------------------------------------------------------------------


def _try_lock(path: Path) -> Any | None:
    """An exclusive, non-blocking lock held as long as the returned file stays open (None if taken)."""
    import fcntl

    f = open(path, "a+")
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        return None
    return f


@contextlib.contextmanager
def _launch_lock(state_dir: Path, timeout: float) -> Iterator[None]:
    deadline = time.monotonic() + timeout
    while True:
        f = _try_lock(state_dir / LAUNCH_LOCK_FILE)
        if f is not None:
            break
        if time.monotonic() > deadline:
            raise SimWorldError(f"Another rhaii-tui is starting the simulated world in {state_dir}; "
                                "wait for it, or remove that directory's launch.lock if nothing is running.")
        time.sleep(0.1)
    try:
        yield
    finally:
        f.close()


# --- serve ---------------------------------------------------------------------------------------


def _usage(world, out: TextIO) -> None:
    ep = world.endpoints_file
    print(f"Simulated cloud running: scenario {world.scenario.name!r} ({world.scenario.description}), "
          f"speed {world.speed:g}x{', resumed' if world.resumed else ''}.", file=out)
    flaky = world.scenario.flaky
    if flaky is not None:
        print(f"  API faults   {flaky.error_rate:.0%} of Kubernetes, {flaky.google_error_rate:.0%} of Google "
              "requests answer 5xx/429", file=out)
    print(f"  state dir    {world.state_dir}", file=out)
    print(f"  Google APIs  {world.google_url}   project {world.project}", file=out)
    print(f"  endpoints    {ep}", file=out)
    print("Point real gcloud and kubectl at it (no Google account involved):", file=out)
    print(f"  export CLOUDSDK_CONFIG={world.gcloud_dir}", file=out)
    print("  gcloud container clusters list", file=out)
    for c in world.clusters.values():
        print(f"  export KUBECONFIG={world.kubeconfig_path(c)}   # cluster {c.name}", file=out)
    print("  (for a new cluster: KUBECONFIG=FILE gcloud container clusters get-credentials NAME --zone ZONE)",
          file=out)
    print("The wizard: rhaii-tui --sim" + (f" --sim-state {world.state_dir}" if world.state_dir != default_state_dir()
                                            else ""), file=out)
    print("Stop with Ctrl-C: the world is saved and resumes, time having passed, on the next start.", file=out)
    out.flush()


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _still_ours(state_dir: Path, started_as: tuple[int, int] | None, lock: Any = None) -> bool:
    """False once the state directory this world started in is gone, or is another one now
    (`rm -rf` then a new `rhaii-tui --sim` on the same path, or anything else re-creating it): the
    lock file this process holds no longer has a name there, or the directory is not the same one."""
    if not state_dir.is_dir() or _identity(state_dir) != started_as:
        return False
    if lock is not None:
        try:
            held = os.fstat(lock.fileno())
        except (OSError, ValueError):
            return False
        if held.st_nlink == 0 or _identity(state_dir / LOCK_FILE) != (held.st_dev, held.st_ino):
            return False
    return True


async def _serve(state_dir: Path, scenario: str | None, speed: float | None, host: str, port: int,
                 reset: bool, out: TextIO, ready: "asyncio.Event | None" = None, *, lock: Any = None,
                 overrides: dict | None = None) -> int:
    from .world import World, WorldError

    started_as = _identity(state_dir)

    world = World(state_dir, scenario, speed, host=host, port=port, reset=reset, overrides=overrides)
    try:
        await world.start()
    except WorldError as e:
        print(f"rhaii-tui sim serve: {e}", file=sys.stderr)
        await world.stop(save=False)
        return 2
    except OSError as e:
        print(f"rhaii-tui sim serve: cannot listen on {host}:{port}: {e.strerror}", file=sys.stderr)
        await world.stop(save=False)
        return 2
    _usage(world, out)
    known = set(world.clusters)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready.set()
    save = True
    try:
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            for key, c in list(world.clusters.items()):
                sim = world.sims.get(key)
                if key not in known and sim is not None and sim.k8s_port:
                    known.add(key)
                    print(f"cluster {c.name} ({c.location}) has a control plane: "
                          f"export KUBECONFIG={world.kubeconfig_path(c)}", file=out)
                    out.flush()
            known &= set(world.clusters)
            if not _still_ours(state_dir, started_as, lock):  # deleted (maybe re-created since): nobody can
                # reach or save this world, and a new one may use that path
                print(f"State directory {state_dir} was removed; stopping the simulated cloud.", file=out)
                out.flush()
                save = False
                stop.set()
    finally:
        await world.stop(save=save)
        with contextlib.suppress(OSError):
            data = json.loads(world.endpoints_file.read_text())
            if data.get("pid") == os.getpid():
                world.endpoints_file.unlink()
    if save:
        print("Simulated cloud stopped; its state is saved in", state_dir, file=out)
    return 0


def serve_main(state_dir: str | Path | None = None, scenario: str | None = None, speed: float | None = None,
               host: str = "127.0.0.1", port: int = 0, *, reset: bool = False, out: TextIO | None = None,
               fault_rate: float | None = None) -> int:
    """Run a world in the foreground until Ctrl-C/SIGTERM. scenario None: continue the world in
    state_dir, or start "fresh". speed None: the saved world's speed, or 30. fault_rate: the share
    of API requests answered 5xx/429 (see scenarios.fault_rate_overrides). Returns an exit code."""
    from .scenarios import SCENARIOS, fault_rate_overrides

    out = out or sys.stdout
    if host not in ("127.0.0.1", "localhost", "::1"):
        print("rhaii-tui sim serve: the simulated cloud listens on the loopback interface only (127.0.0.1).",
              file=sys.stderr)
        return 2
    if scenario is not None and scenario not in SCENARIOS:
        print(f"rhaii-tui sim serve: unknown scenario {scenario!r}; choose one of: {', '.join(SCENARIOS)}",
              file=sys.stderr)
        return 2
    overrides = None
    if fault_rate is not None:
        try:
            overrides = fault_rate_overrides(fault_rate, scenario or _saved_scenario_or_none(state_dir))
        except ValueError as e:
            print(f"rhaii-tui sim serve: {e}", file=sys.stderr)
            return 2
    state_dir = Path(state_dir) if state_dir else default_state_dir()
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"rhaii-tui sim serve: cannot create {state_dir}: {e.strerror}", file=sys.stderr)
        return 2
    lock = _try_lock(state_dir / LOCK_FILE)
    if lock is None:
        print(f"rhaii-tui sim serve: a simulated world is already running in {state_dir} "
              f"({_describe_running(state_dir)}). Use it, stop it, or pick another --state-dir.", file=sys.stderr)
        return 2
    try:
        if reset:
            for name in (STATE_FILE, ENDPOINTS_FILE):
                with contextlib.suppress(FileNotFoundError):
                    (state_dir / name).unlink()
        return asyncio.run(_serve(state_dir, scenario, speed, host, port, reset, out, lock=lock, overrides=overrides))
    except KeyboardInterrupt:
        return 130
    finally:
        lock.close()


def _describe_running(state_dir: Path) -> str:
    info = _read_endpoints(state_dir)
    if not info:
        return "starting"
    return f"pid {info.get('pid')}, scenario {info.get('scenario')}, {info.get('google_api')}"


# --- launcher ------------------------------------------------------------------------------------


def _read_endpoints(state_dir: Path) -> dict | None:
    try:
        return json.loads((state_dir / ENDPOINTS_FILE).read_text())
    except (OSError, ValueError):
        return None


def _pid_alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError, TypeError):
        return False
    return True


def _answers(google_api: str, timeout: float = 1.5) -> dict | None:
    try:
        with urllib.request.urlopen(f"{google_api.rstrip('/')}/_emu/health", timeout=timeout) as r:  # noqa: S310
            return json.loads(r.read())
    except (OSError, ValueError):
        return None


def running_world(state_dir: str | Path) -> dict | None:
    """The endpoints of the world running on state_dir (pid alive, API answering), else None."""
    info = _read_endpoints(Path(state_dir))
    if not info or not _pid_alive(info.get("pid")) or not info.get("google_api"):
        return None
    health = _answers(info["google_api"])
    if not health:
        return None
    return info


def _saved_scenario_or_none(state_dir: str | Path | None) -> str | None:
    try:
        return _saved_scenario(Path(state_dir)) if state_dir else None
    except Exception:  # noqa: BLE001 - no or unreadable saved world
        return None


def _saved_scenario(state_dir: Path) -> str | None:
    try:
        return json.loads((state_dir / STATE_FILE).read_text())["scenario"]["name"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _mismatch(state_dir: Path, have: str, want: str, running: bool) -> SimWorldError:
    verb = "is running" if running else "was saved with"
    return SimWorldError(
        f"The simulated world in {state_dir} {verb} scenario {have!r}, not {want!r}. Continue it with "
        f"--scenario {have} (or no --scenario), start {want!r} in another directory with "
        f"--sim-state DIR, or start over: rhaii-tui sim serve --reset --scenario {want} --state-dir {state_dir}"
        + (" (stop the running one first)." if running else "."))


def ensure_world(state_dir: str | Path | None = None, scenario: str | None = None, speed: float | None = None,
                 *, timeout: float = START_TIMEOUT, fault_rate: float | None = None) -> Path:
    """Reuse the world running on state_dir, or start one in the background; returns its
    endpoints.json. scenario None accepts whatever world is there (a new one is "fresh")."""
    from .scenarios import SCENARIOS

    if scenario is not None and scenario not in SCENARIOS:
        raise SimWorldError(f"Unknown scenario {scenario!r}; choose one of: {', '.join(SCENARIOS)}.")
    state_dir = Path(state_dir) if state_dir else default_state_dir()
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SimWorldError(f"Cannot create the simulated world's directory {state_dir}: {e.strerror}.") from None
    endpoints = state_dir / ENDPOINTS_FILE
    with _launch_lock(state_dir, timeout):
        info = running_world(state_dir)
        if info is not None:
            if scenario and info.get("scenario") != scenario:
                raise _mismatch(state_dir, info.get("scenario", "?"), scenario, running=True)
            return endpoints
        holder = _try_lock(state_dir / LOCK_FILE)
        if holder is None:  # a world process holds the directory but does not answer (yet)
            info = _wait_running(state_dir, None, None, timeout)
            if scenario and info.get("scenario") != scenario:
                raise _mismatch(state_dir, info.get("scenario", "?"), scenario, running=True)
            return endpoints
        holder.close()
        saved = _saved_scenario(state_dir)
        if scenario and saved and saved != scenario:
            raise _mismatch(state_dir, saved, scenario, running=False)
        with contextlib.suppress(FileNotFoundError):
            endpoints.unlink()  # stale: its process is gone
        cmd = [sys.executable, "-m", "rhaii_tui.sim.serve", "--state-dir", str(state_dir)]
        if scenario:
            cmd += ["--scenario", scenario]
        if speed:
            cmd += ["--speed", repr(float(speed))]
        if fault_rate is not None:
            cmd += ["--fault-rate", repr(float(fault_rate))]
        log_path = state_dir / LOG_FILE
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        with open(log_path, "ab") as log_f:
            log_f.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(cmd)}\n".encode())
            log_f.flush()
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log_f, stderr=subprocess.STDOUT,
                                    start_new_session=True, close_fds=True, env=env, cwd=str(state_dir))
        _wait_running(state_dir, proc, log_path, timeout)
        return endpoints


def _wait_running(state_dir: Path, proc: subprocess.Popen | None, log_path: Path | None, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = _read_endpoints(state_dir)
        if info and (proc is None or info.get("pid") == proc.pid) and _answers(info.get("google_api", ""), 1.0):
            return info
        if proc is not None and proc.poll() is not None:
            tail = _tail(log_path) if log_path else ""
            raise SimWorldError(f"The simulated world did not start (exit code {proc.returncode}). "
                                f"Its log ({log_path}) ends with:\n{tail}")
        time.sleep(0.05)
    if proc is not None:
        raise SimWorldError(f"The simulated world did not answer within {timeout:g} s; see {log_path}. "
                            f"(It may still be starting: process {proc.pid}.)")
    raise SimWorldError(f"A simulated world holds {state_dir} but does not answer; stop that process "
                        f"({_describe_running(state_dir)}) and retry.")


def _tail(path: Path, lines: int = 12) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


# --- `python -m rhaii_tui.sim.serve` (what ensure_world starts) -----------------------------------


def main(argv: list[str] | None = None) -> int:
    from .scenarios import SCENARIO_NAMES

    p = argparse.ArgumentParser(prog="rhaii-tui sim serve",
                                description="Run the simulated cloud in the foreground.")
    p.add_argument("--state-dir", metavar="DIR")
    p.add_argument("--scenario", choices=SCENARIO_NAMES, default=None)
    p.add_argument("--speed", type=float, default=None)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--reset", action="store_true", help="discard the saved world and start the scenario anew")
    p.add_argument("--fault-rate", type=float, default=None,
                   help="share of Kubernetes and Google API requests answered 5xx/429 (0..1)")
    args = p.parse_args(argv)
    if args.speed is not None and not (args.speed > 0 and math.isfinite(args.speed)):
        p.error("--speed must be a finite number greater than 0")
    return serve_main(args.state_dir, args.scenario, args.speed, port=args.port, reset=args.reset,
                      fault_rate=args.fault_rate)


if __name__ == "__main__":
    raise SystemExit(main())
