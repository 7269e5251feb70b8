"""Connection-test containers: `nc -z ... HOST PORT` and `curl ... URL`, run by the simulated kubelet.

A container whose command (command + args, or a `sh -c "..."` string) is a BusyBox/netcat `nc` port
check or a `curl` request is recognised generically (no magic names): the kubelet asks the data
plane whether the pod can open that connection (NetworkPolicies decide, on clusters that enforce
them) and the container exits as the real tool would, with the lines it would print:

    nc -zv -w 3 10.8.1.10 8000     open:    "10.8.1.10 (10.8.1.10:8000) open", exit 0
                                   dropped: "nc: 10.8.1.10 (10.8.1.10:8000): Connection timed out"
                                            after the -w seconds, exit 1
                                   refused: "nc: 10.8.1.10 (10.8.1.10:8000): Connection refused", exit 1
    curl -sS -m 3 http://H:P/path  open:    exit 0 (prints -w's %{http_code} as 200)
                                   dropped: "curl: (28) Connection timed out after 3002 milliseconds", 28
                                   refused: "curl: (7) Failed to connect to H port P after 1 ms: Couldn't
                                            connect to server", exit 7
Without -z, nc is not a one-shot check and is not recognised. The exact wording of the real tools
varies by version; the exit codes are what the wizard reads.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from .logscripts import Script

DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True)
class ProbeCommand:
    tool: str  # "nc" | "curl"
    host: str
    port: int
    timeout: float
    write_out: str = ""  # curl -w
    silent: bool = False  # curl -s without -S


def _argv(container: dict[str, Any]) -> list[str]:
    argv = [str(a) for a in (container.get("command") or [])] + [str(a) for a in (container.get("args") or [])]
    if len(argv) >= 3 and argv[0].rsplit("/", 1)[-1] in ("sh", "bash", "ash") and argv[1] == "-c":
        try:
            argv = shlex.split(argv[2])
        except ValueError:
            return []
    return argv


def _float(v: str) -> float | None:
    try:
        return float(v)
    except ValueError:
        return None


def _nc(args: list[str]) -> ProbeCommand | None:
    zero, timeout, pos = False, DEFAULT_TIMEOUT, []
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("-") and len(a) > 1:
            flags = a[1:]
            j = 0
            while j < len(flags):
                f = flags[j]
                if f == "z":
                    zero = True
                elif f == "w":
                    rest = flags[j + 1:]
                    if not rest and i + 1 < len(args):
                        i += 1
                        rest = args[i]
                    timeout = _float(rest) or timeout
                    break
                j += 1
        else:
            pos.append(a)
        i += 1
    if not zero or len(pos) < 2 or not pos[-1].isdigit():
        return None
    return ProbeCommand("nc", pos[-2], int(pos[-1]), timeout)


def _curl(args: list[str]) -> ProbeCommand | None:
    timeout, url, write_out, silent, show_errors = DEFAULT_TIMEOUT, "", "", False, False
    i = 0
    with_value = {"-m", "--max-time", "--connect-timeout", "-w", "--write-out", "-o", "--output", "-H",
                  "--header", "-X", "--request", "-d", "--data", "-u", "--user", "--retry", "-A"}
    while i < len(args):
        a = args[i]
        if a in with_value and i + 1 < len(args):
            v = args[i + 1]
            if a in ("-m", "--max-time", "--connect-timeout"):
                timeout = _float(v) or timeout
            elif a in ("-w", "--write-out"):
                write_out = v
            i += 2
            continue
        if a.startswith("-") and not a.startswith("--"):
            silent = silent or "s" in a[1:]
            show_errors = show_errors or "S" in a[1:]
        elif not a.startswith("-"):
            url = a
        i += 1
    if not url:
        return None
    u = urlparse(url if "://" in url else f"http://{url}")
    if not u.hostname:
        return None
    port = u.port or (443 if u.scheme == "https" else 80)
    return ProbeCommand("curl", u.hostname, port, timeout, write_out, silent and not show_errors)


def parse(container: dict[str, Any]) -> ProbeCommand | None:
    """The connection test a container runs, or None when it runs something else."""
    argv = _argv(container)
    if not argv:
        return None
    tool = argv[0].rsplit("/", 1)[-1]
    if tool in ("nc", "netcat", "ncat"):
        return _nc(argv[1:])
    if tool == "busybox" and len(argv) > 1 and argv[1] == "nc":
        return _nc(argv[2:])
    if tool == "curl":
        return _curl(argv[1:])
    return None


def script(cmd: ProbeCommand, outcome: str) -> Script:
    """The container's run for a connection `outcome` ("open", "refused", "timeout")."""
    s = Script()
    target = f"{cmd.host} ({cmd.host}:{cmd.port})"
    if cmd.tool == "nc":
        if outcome == "open":
            s.add(0.05, f"{target} open")
            s.exit_at, s.exit_code = 0.1, 0
        elif outcome == "refused":
            s.add(0.05, f"nc: {target}: Connection refused")
            s.exit_at, s.exit_code = 0.1, 1
        else:
            s.add(cmd.timeout, f"nc: {target}: Connection timed out")
            s.exit_at, s.exit_code = cmd.timeout + 0.05, 1
        return s
    if outcome == "open":
        if cmd.write_out:
            s.add(0.05, cmd.write_out.replace("%{http_code}", "200").replace("\\n", ""))
        s.exit_at, s.exit_code = 0.1, 0
    elif outcome == "refused":
        if not cmd.silent:
            s.add(0.05, f"curl: (7) Failed to connect to {cmd.host} port {cmd.port} after 1 ms: "
                        "Couldn't connect to server")
        s.exit_at, s.exit_code = 0.1, 7
    else:
        if not cmd.silent:
            s.add(cmd.timeout, f"curl: (28) Connection timed out after {int(cmd.timeout * 1000) + 2} milliseconds")
        s.exit_at, s.exit_code = cmd.timeout + 0.05, 28
    return s


__all__ = ["ProbeCommand", "parse", "script"]
