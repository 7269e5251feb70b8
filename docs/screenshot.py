"""Make docs/screenshot.svg: the wizard on step 5 of a live simulated deploy, replicas mid-start.

    python docs/screenshot.py [--out docs/screenshot.svg]

A simulated world with the cluster ready, the operators installed and the two secrets (dummy values)
in place; the wizard applies the LLMInferenceService from its step-5 page, waits until one replica
is Ready and the others are still starting, and saves the screen. Nothing here is drawn by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def prepare(ctx) -> None:
    from rhaii_tui.secrets import hf_secret_from_form, pull_secret_from_form
    from rhaii_tui.steps import operators as ops
    from rhaii_tui.steps import secrets as secrets_step
    from rhaii_tui.steps.base import Status

    ops.install(ctx)
    deadline = time.monotonic() + 300
    while ops.probe(ctx).status is not Status.DONE:
        if time.monotonic() > deadline:
            raise SystemExit("the simulated operators never became ready")
        time.sleep(0.1)
    secrets_step.ensure_namespace(ctx)
    ctx.secrets.add(hf_secret_from_form("hf_" + "x" * 34))
    ctx.secrets.add(pull_secret_from_form("demo-user", "not-a-real-password"))
    secrets_step.apply_secrets(ctx)


def _ctx(world):
    from rhaii_tui.config import DeployConfig
    from rhaii_tui.steps.context import StepContext

    return StepContext(DeployConfig(project=world.endpoints["project"], replicas=3), world.profile())


async def shoot(world, out: Path) -> None:
    from rhaii_tui.app import RhaiiApp
    from rhaii_tui.config import DeployConfig

    await asyncio.to_thread(prepare, _ctx(world))
    app = RhaiiApp(DeployConfig(project=world.endpoints["project"], replicas=3), profile=world.profile(),
                   resume=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.start_page_ready.wait()
        while app.resume_screen is None or app.resume_screen.standing is None:  # the sidebar filled in
            await pilot.pause(0.1)
        await pilot.press("enter")  # "Go to step 5"
        while app.current_step != 5 or app.current_page is None or not app.current_page.is_mounted:
            await pilot.pause(0.1)
        page = app.current_page
        await pilot.pause(1.0)
        page.action_apply()
        deadline = time.monotonic() + 300
        while True:
            summary = getattr(app.step_states.get(5), "summary", "")
            if summary[:1] in "12" and summary[1:].startswith("/3 pods ready"):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"no replica became Ready in time (step 5: {summary!r})")
            await pilot.pause(0.1)
        out.write_text(app.export_screenshot(title="rhaii-tui"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot.svg")
    p.add_argument("--speed", type=float, default=8.0)
    args = p.parse_args()
    from rhaii_tui.sim.testing import run_world

    with tempfile.TemporaryDirectory() as d, run_world(Path(d), "cluster-ready", speed=args.speed) as world:
        asyncio.run(shoot(world, args.out))
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
