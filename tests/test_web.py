"""`rhaii-tui web`: the wizard in a browser, reachable only with the printed token, loading nothing
from another host, leaving no process behind; and the same in a real (headless) Chromium.

The server runs as a subprocess (`rhaii-tui --sim ... web --port 0`), as a user starts it; each tab
is a websocket that starts its own wizard process.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from rhaii_tui.cli import _load_commands, build_parser
from rhaii_tui.web import is_loopback, wizard_argv

ROOT = Path(__file__).resolve().parents[1]
DEADLINE = 90.0  # seconds: the machine is loaded; every wait polls a state up to this
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


# ---------------------------------------------------------------- helpers


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_TOKEN", "REGISTRY_PASSWORD", "PROJECT_ID", "ZONE", "CLUSTER_NAME", "NAMESPACE")}
    env.update(RHAII_TUI_STATE_DIR=str(tmp / "state"), CLOUDSDK_CONFIG=str(tmp / "no-gcloud"),
               PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    return env


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d.name))
    return out


def _wait(pred, what: str, timeout: float = DEADLINE):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


class WebServer:
    def __init__(self, tmp: Path, *extra: str):
        self.tmp = tmp
        self.sim_state = tmp / "sim"
        cmd = [sys.executable, "-m", "rhaii_tui", "--sim", "--sim-state", str(self.sim_state), "--speed", "2000",
               "web", "--port", "0", *extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                     env=_env(tmp), cwd=str(tmp))
        self.stdout = ""
        self.seen: set[int] = set()
        self.url = _wait(self._url, "the server to print its URL")
        parts = urllib.parse.urlsplit(self.url)
        self.base = f"{parts.scheme}://{parts.netloc}"
        self.netloc = parts.netloc
        self.token = urllib.parse.parse_qs(parts.query)["token"][0]

    def _url(self) -> str | None:
        if self.proc.poll() is not None:
            raise AssertionError(f"the server exited ({self.proc.returncode}): {self.proc.stderr.read().decode()}")
        if select.select([self.proc.stdout], [], [], 0.1)[0]:
            self.stdout += os.read(self.proc.stdout.fileno(), 65536).decode()
        m = re.search(r"http://\S+\?token=\S+", self.stdout)
        return m.group(0) if m else None

    def world_pid(self) -> int | None:
        from rhaii_tui.sim.serve import running_world

        info = running_world(self.sim_state)
        return int(info["pid"]) if info else None

    def wizards(self) -> list[int]:
        """The wizard processes this server runs (its other child is the simulated world it started)."""
        found = [p for p in _children(self.proc.pid) if p != self.world_pid() and _alive(p)]
        self.seen.update(found)
        return found

    def close(self) -> None:
        for pid in self.seen | set(self.wizards()):  # what a failed test may have left
            if _alive(pid):
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        pid = self.world_pid()
        if pid:
            os.kill(pid, signal.SIGTERM)
            _wait(lambda: not _alive(pid), "the simulated world to stop")


@pytest.fixture
def web_server(tmp_path):
    servers: list[WebServer] = []

    def start(*extra: str) -> WebServer:
        servers.append(WebServer(tmp_path, *extra))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **kw):
        return None


def _get(url: str, cookie: str | None = None, headers: dict | None = None) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, headers=dict(headers or {}, **({"Cookie": cookie} if cookie else {})))
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def _login(server: WebServer) -> str:
    status, headers, _ = _get(server.url)
    assert status == 303 and headers["Location"] == "/"  # the token leaves the address bar
    set_cookie = headers["Set-Cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie
    return set_cookie.split(";", 1)[0]


def _open_tab(server: WebServer, cookie: str):
    """A tab's websocket (what the page opens); returns it once its wizard has painted."""
    import websocket

    ws = websocket.create_connection(f"ws://{server.netloc}/ws?width=120&height=40", cookie=cookie,
                                     timeout=DEADLINE)
    seen = b""
    deadline = time.monotonic() + DEADLINE
    while b"SIMULATED" not in seen:
        assert time.monotonic() < deadline, "the wizard never painted"
        data = ws.recv()
        seen += data if isinstance(data, bytes) else b""
    return ws


# ---------------------------------------------------------------- unit


def test_the_tab_wizard_gets_the_servers_global_flags(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _load_commands()
    args = build_parser().parse_args(["--sim", "--sim-state", "rel/world", "--project", "p-1", "--speed", "50",
                                      "--scenario", "fresh", "web", "--port", "8123", "--host", "127.0.0.1"])
    argv = wizard_argv(args)
    assert argv[:3] == [sys.executable, "-m", "rhaii_tui"]
    flags = argv[3:]
    assert "--sim" in flags
    assert flags[flags.index("--sim-state") + 1] == str(tmp_path / "rel" / "world")
    assert flags[flags.index("--project") + 1] == "p-1"
    assert flags[flags.index("--scenario") + 1] == "fresh"
    assert float(flags[flags.index("--speed") + 1]) == 50
    assert "web" not in flags and "--port" not in flags and "--host" not in flags and "--zone" not in flags


def test_loopback_addresses():
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.5", "example.com"))


# ---------------------------------------------------------------- server (subprocess)


def test_nothing_is_served_without_the_token_and_the_page_loads_nothing_from_elsewhere(web_server):
    server = web_server()
    for path in ("/", "/static/js/textual.js", "/static/css/xterm.css", "/ws?width=80&height=24", "/download/x",
                 "/?token=wrong", "/?token="):
        status, _, body = _get(server.base + path)
        assert status == 403, path
        assert b"printed" in body  # says what to do
    status, _, _ = _get(server.base + "/", cookie=f"rhaii_tui_token_1={server.token}x")
    assert status == 403

    cookie = _login(server)
    status, headers, page = _get(server.base + "/", cookie=cookie)
    assert status == 200
    html = page.decode()
    title = re.search(r"<title>(.*?)</title>", html).group(1)
    assert title == "rhaii-tui: vLLM on GKE TPU"
    for secret in (sys.executable, str(server.tmp), "python", "--sim-state"):  # no command line, no paths
        assert secret not in html
    assert "fonts.googleapis" not in html
    assert "'self'" in headers["Content-Security-Policy"]

    # every resource the page names, and what those name, is on this server
    hosts = set()
    resources = {"/": html}
    for ref in re.findall(r'(?:src|href)="([^"]+)"', html):
        if not ref.startswith(("data:", "#")):
            status, _, body = _get(urllib.parse.urljoin(server.base + "/", ref), cookie=cookie)
            assert status == 200, ref
            resources[ref] = body.decode("utf-8", "replace")
    assert any(r.endswith("textual.js") for r in resources) and any(r.endswith(".css") for r in resources)
    for ref, text in resources.items():
        if ref.endswith(".css"):
            text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)  # comments name projects, not resources
        for url in re.findall(r"""(?:https?|wss?)://[^\s"'<>)]+""", text):
            hosts.add((ref, urllib.parse.urlsplit(url).netloc))
    assert {h for _, h in hosts} <= {server.netloc}, hosts
    for font in re.findall(r'url\("([^"]+\.ttf)"\)', html):  # the font is served here
        assert _get(server.base + font, cookie=cookie)[0] == 200
    # a websocket opened from another site's page is refused even with the cookie
    status, _, _ = _get(server.base + "/ws", cookie=cookie, headers={"Origin": "http://evil.example"})
    assert status == 403


def test_a_non_loopback_host_warns_who_can_reach_it(web_server):
    server = web_server("--host", "0.0.0.0")
    assert server.url.startswith("http://127.0.0.1:")  # still usable from here
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=DEADLINE) == 0
    err = server.proc.stderr.read().decode()
    assert "WARNING" in err and "0.0.0.0" in err and "other machines on the network" in err
    assert server.token not in err  # the token is printed once, in the URL on stdout


def test_bad_host_or_port_says_what_to_do(tmp_path):
    import socket

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    for extra, words in ((["--port", "70000"], "between 0 and 65535"),
                         (["--port", str(busy.getsockname()[1])], "pick another --port"),
                         (["--host", "no-such-host.invalid"], "cannot listen on --host"),
                         (["--port", "x"], "invalid int value")):
        r = subprocess.run([sys.executable, "-m", "rhaii_tui", "web", *extra], capture_output=True, text=True,
                           env=_env(tmp_path), timeout=DEADLINE, stdin=subprocess.DEVNULL)
        assert r.returncode == 2, (extra, r.stderr)
        assert words in r.stderr and "Traceback" not in r.stderr
    busy.close()


def test_loopback_is_the_default_and_prints_no_warning(web_server):
    server = web_server()
    assert server.url.startswith("http://127.0.0.1:")
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=DEADLINE) == 0
    err = server.proc.stderr.read().decode()
    assert "WARNING" not in err and server.token not in err


# ---------------------------------------------------------------- processes


def test_a_wizard_whose_tab_closed_or_whose_server_was_killed_exits_by_itself(web_server):
    server = web_server()
    cookie = _login(server)
    closed = _open_tab(server, cookie)
    first = _wait(server.wizards, "the first tab's wizard")
    closed.close()  # the browser tab goes away: its wizard quits
    _wait(lambda: not _alive(first[0]), "the closed tab's wizard to exit")
    ws = _open_tab(server, cookie)
    wizards = _wait(server.wizards, "the second tab's wizard")
    assert len(wizards) == 1
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait()
    # nobody is left to stop it: it must notice and exit (textual's own web driver runs on forever)
    _wait(lambda: not _alive(wizards[0]), "the orphaned wizard to exit", timeout=60)
    ws.close()


def test_sigterm_stops_the_server_every_wizard_and_the_world_it_started(web_server):
    server = web_server()
    world = _wait(server.world_pid, "the simulated world the server starts")
    cookie = _login(server)
    tabs = [_open_tab(server, cookie), _open_tab(server, cookie)]
    wizards = _wait(lambda: len(server.wizards()) == 2 and server.wizards(), "one wizard per tab")
    groups = {os.getpgid(p) for p in wizards}
    assert groups == set(wizards)  # each in its own process group, not the server's
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=DEADLINE) == 0
    assert not [p for p in wizards if _alive(p)]
    assert not _alive(world)
    for ws in tabs:  # the browsers were told the session ended
        with contextlib.suppress(Exception):
            while ws.recv():
                pass
        assert not ws.connected


# ---------------------------------------------------------------- a real browser

# The page keeps its xterm.js terminal in a closure; this hook (injected before the page's scripts)
# notes the terminal when textual.js stores it, so the test reads what the terminal shows.
XTERM_HOOK = """
Object.defineProperty(Object.prototype, "terminal", {configurable: true, get() { return undefined; },
  set(v) { Object.defineProperty(this, "terminal", {value: v, writable: true, configurable: true, enumerable: true});
           if (v && v.buffer && v.buffer.active) window.__xterm = v; }});
"""
SCREEN_JS = """() => { const t = window.__xterm; if (!t) return "";
  const b = t.buffer.active, rows = [];
  for (let i = 0; i < b.length; i++) rows.push(b.getLine(i).translateToString(true));
  return rows.join("\\n"); }"""


@pytest.fixture
def browser():
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a test dependency: "
                                                                 "pip install -e '.[test]'")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield b
        finally:
            b.close()


def _screen_shows(page, *texts: str, timeout: float = DEADLINE) -> str:
    checks = " && ".join(f"s.includes({t!r})" for t in texts)
    page.wait_for_function(f"() => {{ const s = ({SCREEN_JS})(); return {checks}; }}", timeout=timeout * 1000)
    return page.evaluate(SCREEN_JS)


def test_the_wizard_runs_in_a_real_browser_from_the_printed_url_and_nowhere_else(web_server, browser):
    server = web_server()
    page = browser.new_page(viewport={"width": 1200, "height": 760})
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.on("websocket", lambda ws: requested.append(ws.url))
    page.add_init_script(XTERM_HOOK)

    response = page.goto(server.url)
    assert response.status == 200
    assert page.url == server.base + "/"  # the token is not left in the address bar
    screen = _screen_shows(page, "SIMULATED", "1 Preflight checks", "11 Model identity", "Go to step 1")
    assert "rhaii-demo-project" in screen
    page.locator(".xterm-helper-textarea").focus()
    page.keyboard.press("Enter")  # "where the deployment stands": go to the first step not done
    _screen_shows(page, "Step 1 · Preflight checks")
    page.keyboard.press("]")  # next step
    _screen_shows(page, "Step 2 · GKE cluster and TPU node pool")

    assert any(u.endswith("/static/js/textual.js") for u in requested)
    assert any(u.startswith(f"ws://{server.netloc}/ws") for u in requested)
    elsewhere = [u for u in requested if urllib.parse.urlsplit(u).netloc != server.netloc]
    assert not elsewhere, f"the page contacted other hosts: {elsewhere}"
    assert page.title().startswith("rhaii-tui") and "python" not in page.title()


def test_the_browser_gets_403_without_the_token(web_server, browser):
    server = web_server()
    page = browser.new_page()
    for url in (server.base + "/", server.base + "/?token=" + "x" * len(server.token)):
        response = page.goto(url)
        assert response.status == 403
        assert "printed" in page.content()
    assert page.locator(".xterm").count() == 0
    assert server.wizards() == []  # no wizard was started for it
