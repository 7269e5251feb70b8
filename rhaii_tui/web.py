"""`rhaii-tui web`: the wizard in a browser, safe by default.

Each browser tab gets its own wizard process (`python -m rhaii_tui` with the server's own global
flags, run with a web driver), spoken to over a websocket with textual-serve's protocol. What this
module adds to textual-serve:

- Access: the server listens on 127.0.0.1 unless `--host` says otherwise, and every request
  (page, static files, websocket, downloads) needs the random token printed in the URL: the first
  load carries it as `?token=`, is answered with an HttpOnly SameSite=Strict cookie and a redirect
  to `/` (so the token leaves the address bar of a shared screen); anything without it gets 403.
  A websocket from another origin is refused too.
- Privacy: our own page template: a chosen title (textual-serve shows the command line), the
  font textual-serve ships served from here (it links Google's font service), and a
  Content-Security-Policy that lets the page load nothing from any other host.
- Processes: each wizard runs in its own session (process group), started without a shell; Ctrl+C
  or SIGTERM stops every wizard the server started (TERM, then KILL after a grace period) and the
  simulated world if the server started it. A wizard whose server dies exits by itself
  (`app.BrowserDriver` watches its stdin and parent).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import hmac
import ipaddress
import logging
import os
import secrets
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from .cli import UsageError

log = logging.getLogger(__name__)

DRIVER = "rhaii_tui.app:BrowserDriver"
TEMPLATE = Path(__file__).with_name("web_index.html")
TITLE = "rhaii-tui: vLLM on GKE TPU"
STOP_GRACE = 5.0  # seconds a wizard gets to exit after SIGTERM before SIGKILL
# what the page may load: only this server (no font service, no CDN); xterm.js needs inline styles
CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; font-src 'self'; connect-src 'self'; worker-src 'self' blob:; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def wizard_argv(args: argparse.Namespace) -> list[str]:
    """The command line of one tab's wizard: this interpreter, `-m rhaii_tui`, and the global flags
    the server was given (from its parsed arguments, never through a shell)."""
    from .cli import build_parser

    argv = [sys.executable, "-m", "rhaii_tui"]
    for action in build_parser()._actions:
        if not action.option_strings or isinstance(action, (argparse._HelpAction, argparse._VersionAction,
                                                             argparse._SubParsersAction)):
            continue
        value = getattr(args, action.dest, None)
        flag = max(action.option_strings, key=len)
        if isinstance(action, argparse._StoreTrueAction):
            if value:
                argv.append(flag)
        elif value is not None:
            if action.metavar in ("FILE", "DIR"):
                value = os.path.abspath(value)
            argv += [flag, str(value)]
    return argv


def _bind(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise UsageError(f"cannot listen on --host {host}: {e.strerror}; give an address of this machine "
                         "(default 127.0.0.1)") from None
    family, _type, _proto, _name, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as e:
        sock.close()
        hint = {errno.EADDRINUSE: "pick another --port (0: any free port)",
                errno.EACCES: "ports below 1024 need privileges: pick another --port (0: any free port)",
                }.get(e.errno, "give --host an address of this machine (default 127.0.0.1)")
        raise UsageError(f"cannot listen on {host}:{port}: {e.strerror}; {hint}") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _service_class():
    from textual_serve.app_service import AppService

    class WizardService(AppService):
        """One tab's wizard: started without a shell, in its own session, with our web driver."""

        def __init__(self, argv: list[str], children: set, **kw: Any) -> None:
            super().__init__(" ".join(argv), **kw)
            self.argv = argv
            self.children = children

        async def _open_app_process(self, width: int = 80, height: int = 24):
            env = self._build_environment(width=width, height=height)
            env["TEXTUAL_DRIVER"] = DRIVER
            self._process = process = await asyncio.create_subprocess_exec(
                *self.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=env, start_new_session=True)
            self.children.add(process)
            self._stdin = process.stdin
            return process

        async def stop(self) -> None:
            """Ask the wizard to quit; one that does not within the grace period is killed."""
            try:
                await asyncio.wait_for(super().stop(), STOP_GRACE)
            except (asyncio.TimeoutError, OSError):
                pass
            if self._process is not None:
                await stop_process_group(self._process)
                self.children.discard(self._process)

    return WizardService


async def stop_process_group(process: asyncio.subprocess.Process, grace: float = STOP_GRACE) -> None:
    """SIGTERM the wizard's process group (the wizard exits cleanly: its lease is released), SIGKILL
    whatever of the group is left after `grace` seconds (the wizard, or a load generator it started)."""
    if process.returncode is not None:  # already reaped: its pid may belong to someone else by now
        return
    with contextlib.suppress(OSError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(process.wait(), grace)
    with contextlib.suppress(OSError):
        os.killpg(process.pid, signal.SIGKILL)
    await process.wait()


class WizardServer:
    """The aiohttp application: token check, our page, textual-serve's static files and protocol."""

    def __init__(self, argv: list[str], token: str, port: int, title: str = TITLE) -> None:
        from textual_serve.server import Server

        self.argv = argv
        self.token = token
        self.cookie = f"rhaii_tui_token_{port}"  # browsers share cookies across ports: one per server
        self.title = title
        self.children: set[asyncio.subprocess.Process] = set()
        self.sockets: set[Any] = set()
        self._base = Server(command=title, title=title)  # statics, downloads and the message loop
        self._service = _service_class()

    def _authorized(self, request) -> bool:
        supplied = request.query.get("token") or request.cookies.get(self.cookie) or ""
        return hmac.compare_digest(supplied.encode("utf-8", "replace"), self.token.encode())

    def make_app(self):
        from aiohttp import web

        @web.middleware
        async def guard(request, handler):
            if not self._authorized(request):
                return web.Response(status=403, text="403 Forbidden: open the URL that 'rhaii-tui web' printed "
                                                     "(it carries the access token).\n")
            origin = request.headers.get("Origin")
            if origin and origin not in (f"http://{request.host}", f"https://{request.host}"):
                return web.Response(status=403, text="403 Forbidden: request from another site.\n")
            response = await handler(request)
            response.headers.setdefault("Content-Security-Policy", CSP)
            response.headers.setdefault("Referrer-Policy", "no-referrer")
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            response.headers.setdefault("X-Frame-Options", "DENY")
            return response

        app = web.Application(middlewares=[guard])
        app.add_routes([
            web.get("/", self.handle_index),
            web.get("/ws", self.handle_websocket),
            web.get("/download/{key}", self._base.handle_download),
            web.static("/static", self._base.statics_path),
        ])
        return app

    async def handle_index(self, request):
        from aiohttp import web
        from jinja2 import Template

        if request.query:  # the first load carries the token: keep it in a cookie, out of the address bar
            response = web.HTTPSeeOther("/")
            response.set_cookie(self.cookie, self.token, httponly=True, samesite="Strict", path="/")
            response.headers["Cache-Control"] = "no-store"
            return response
        scheme = "wss" if request.secure else "ws"
        html = Template(TEMPLATE.read_text(encoding="utf-8"), autoescape=True).render(
            title=self.title, websocket_url=f"{scheme}://{request.host}/ws", static="/static/")
        return web.Response(text=html, content_type="text/html", headers={"Cache-Control": "no-store"})

    async def handle_websocket(self, request):
        from aiohttp import web

        def size(name: str, default: int) -> int:
            try:
                return max(10, min(1000, int(request.query.get(name, default))))
            except ValueError:
                return default

        websocket = web.WebSocketResponse(heartbeat=15)
        await websocket.prepare(request)
        self.sockets.add(websocket)
        service = self._service(self.argv, self.children, write_bytes=websocket.send_bytes,
                                write_str=websocket.send_str, close=websocket.close,
                                download_manager=self._base.download_manager)
        try:
            await service.start(size("width", 80), size("height", 24))
            await self._base._process_messages(websocket, service)
        except asyncio.CancelledError:
            pass
        except Exception as e:  # a broken tab must not take the server down
            log.warning("browser session ended: %s: %s", type(e).__name__, e)
        finally:
            self.sockets.discard(websocket)
            await service.stop()
            with contextlib.suppress(Exception):
                await websocket.close()
        return websocket

    async def stop_all(self) -> None:
        """Stop every wizard this server started, then close the browsers' connections."""
        await asyncio.gather(*(stop_process_group(p) for p in list(self.children)), return_exceptions=True)
        self.children.clear()
        for ws in list(self.sockets):
            with contextlib.suppress(Exception):
                await ws.close()


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _start_world(args: argparse.Namespace) -> tuple[Path, bool]:
    """Start (or reuse) the simulated world once, before any tab: a wrong --scenario is reported
    here, and every tab talks to the same world. Returns (state dir, whether this server started it)."""
    from .cli import sim_state_dir
    from .sim.serve import ensure_world, running_world

    state = sim_state_dir(args)
    was_running = running_world(state) is not None
    ensure_world(state, scenario=args.scenario, speed=args.speed)
    return state, not was_running


def _stop_world(state: Path) -> None:
    from .commands import _sim_process_command

    with contextlib.redirect_stdout(sys.stderr):
        _sim_process_command("stop", state)


async def _serve(server: WizardServer, sock: socket.socket, url: str, warning: str | None) -> None:
    from aiohttp import web

    runner = web.AppRunner(server.make_app(), access_log=None, handle_signals=False, shutdown_timeout=STOP_GRACE)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    print(f"Serving the wizard at\n\n    {url}\n\nOpen that URL in a browser (each tab runs its own wizard; "
          "the URL's token is the key: share it only with whoever may drive this deployment).\n"
          "Ctrl+C stops the server and every wizard it started.", flush=True)
    try:
        await stop.wait()
    finally:
        print("Stopping the wizards…", file=sys.stderr, flush=True)
        await server.stop_all()
        await runner.cleanup()


def serve_main(args: argparse.Namespace) -> int:
    """`rhaii-tui web`: serve until Ctrl+C/SIGTERM; returns the exit code."""
    host, port = args.host, args.port
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, got {port}")
    try:
        import textual_serve  # noqa: F401
    except ModuleNotFoundError:
        raise UsageError("browser mode needs the textual-serve package: pip install textual-serve") from None
    sock = _bind(host, port)
    port = sock.getsockname()[1]
    warning = None
    if not is_loopback(host):
        warning = (f"WARNING: listening on {host}:{port}, not only on this machine's loopback: anyone who can "
                   f"reach {'any address of this machine' if host in ('0.0.0.0', '::', '') else host} on port "
                   f"{port} (other machines on the network, containers, forwarded ports) can load the page, "
                   "and the token is all that keeps them from driving the cloud with your credentials. "
                   "The connection is plain HTTP: the token and the screen travel unencrypted.")
    token = secrets.token_urlsafe(24)
    url = f"http://{_url_host(host)}:{port}/?token={token}"
    world = None
    try:
        if args.sim:
            world, started = _start_world(args)
            if not started:
                world = None  # someone else's world: leave it running
        server = WizardServer(wizard_argv(args), token, port)
        asyncio.run(_serve(server, sock, url, warning))
    finally:
        sock.close()
        if world is not None:
            _stop_world(world)
    return 0
