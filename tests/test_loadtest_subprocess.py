"""The throughput run's own process starts even when sys.stderr has no usable file descriptor.

Under Textual sys.stderr is the app's print capture (fileno() is -1); multiprocessing's resource
tracker, started by the first lock the run creates, passed that fd to its child and the run failed
with "bad value(s) in fds_to_keep" before sending a request. The tracker starts once per process,
so each case runs in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = textwrap.dedent("""
    import io, json, socket, sys

    class Capture(io.TextIOBase):  # like Textual's print capture
        def write(self, s):
            return len(s)

        def fileno(self):
            {fileno}

    if __name__ == "__main__":
        real = sys.stdout
        capture = Capture()
        sys.stderr = capture
        from rhaii_tui.loadtest.engine import LoadError, LoadSpec, SubprocessLoad

        with socket.socket() as s:  # a port nothing listens on: every request is refused
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        out = {{}}
        try:
            run = SubprocessLoad(LoadSpec(f"http://127.0.0.1:{{port}}", mode="serial", duration_s=0.3,
                                          warmup_s=0, timeout_s=2)).start()
            res = run.result(timeout=60)
            out = {{"requests": res.requests, "ok": res.ok}}
        except LoadError as e:
            out = {{"load_error": str(e)}}
        except Exception as e:
            out = {{"crash": f"{{type(e).__name__}}: {{e}}"}}
        out["stderr_restored"] = sys.stderr is capture
        real.write(json.dumps(out) + "\\n")
""")


@pytest.mark.parametrize("fileno", ["return -1", "raise io.UnsupportedOperation('fileno')"],
                         ids=["fileno-minus-1", "fileno-raises"])
def test_throughput_process_starts_under_a_print_capture(tmp_path, fileno):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(fileno=fileno))
    proc = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # the run happened: requests were sent (and refused), a result came back, no crash
    assert "crash" not in out and "load_error" not in out, out
    assert out["requests"] >= 1 and out["ok"] == 0
    # the app's print capture is still in place afterwards
    assert out["stderr_restored"] is True


def test_a_process_that_cannot_start_is_a_load_error_not_a_traceback(monkeypatch):
    from rhaii_tui.loadtest import engine

    def broken() -> None:
        raise ValueError("bad value(s) in fds_to_keep")

    monkeypatch.setattr(engine, "_ensure_resource_tracker", broken)
    with pytest.raises(engine.LoadError, match="cannot start the load generator process"):
        engine.SubprocessLoad(engine.LoadSpec("http://127.0.0.1:1", mode="serial", duration_s=0.1)).start()
