"""Regenerate docs/browser.png: `rhaii-tui --sim web` on a fresh simulated world, step 1 in headless
Chromium (the system's, driven by Playwright: `pip install -e '.[test]'`, `apt-get install chromium`).

    python docs/browser_screenshot.py
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_web import SCREEN_JS, XTERM_HOOK, _screen_shows  # noqa: E402


def main() -> None:
    from playwright.sync_api import sync_playwright

    out = ROOT / "docs" / "browser.png"
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, RHAII_TUI_STATE_DIR=f"{tmp}/state", PYTHONUNBUFFERED="1")
        server = subprocess.Popen([sys.executable, "-m", "rhaii_tui", "--sim", "--sim-state", f"{tmp}/sim", "web"],
                                  stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        try:
            url = None
            for line in server.stdout:
                if m := re.search(r"http://\S+\?token=\S+", line):
                    url = m.group(0)
                    break
            assert url, "the server printed no URL"
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1100, "height": 700})
                page.add_init_script(XTERM_HOOK)
                page.goto(url)
                _screen_shows(page, "Go to step 1")
                page.locator(".xterm-helper-textarea").focus()
                page.keyboard.press("Enter")
                page.wait_for_function(f"() => {{ const s = ({SCREEN_JS})(); "
                                       "return s.includes('Step 1') && s.includes('All checks passed'); }", timeout=90000)
                page.screenshot(path=str(out))
                browser.close()
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
    try:  # a few colours are enough for a terminal: a small file
        from PIL import Image

        Image.open(out).convert("RGB").quantize(colors=48, dither=Image.Dither.NONE).save(out, optimize=True)
    except ImportError:
        pass
    print(out)


if __name__ == "__main__":
    main()
