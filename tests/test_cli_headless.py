"""The headless commands' command line: bad input, missing credentials, a vanished cluster, starting
the simulated world, `bench`. One clear line on stderr, never a traceback."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from rhaii_tui import cli


@pytest.fixture(autouse=True)
def clean_env(tmp_path, monkeypatch):
    monkeypatch.setenv("RHAII_TUI_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud"))
    monkeypatch.setenv("NO_GCE_CHECK", "True")            # google.auth: do not probe a metadata server
    for name in ("PROJECT_ID", "ZONE", "CLUSTER_NAME", "NAMESPACE", "HF_TOKEN", "REGISTRY_PASSWORD",
                 "GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CORE_PROJECT"):
        monkeypatch.delenv(name, raising=False)


def main(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = cli.main(list(argv))
    except SystemExit as e:           # argparse errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> bool:
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("usage:") and ln.strip()
             and not ln.startswith(" ") and not ln.startswith("Run '")]
    return len(lines) == 1 and "Traceback" not in err


@pytest.mark.parametrize("argv,words", [
    (["apply", "--through", "12"], "there are 11 steps"),
    (["apply", "--through", "two"], "expected a step number"),
    (["apply", "--netpol", "maybe"], "invalid choice"),
    (["apply", "--poll", "0"], "between 0 and 300"),
    (["bench", "--concurrency", "0"], "at least 1"),
    (["bench", "--concurrency", "5", "--serial"], "not allowed with"),
    (["bench", "--rate", "-3"], "greater than 0"),
    (["verify", "--duration", "x"], "expected a number"),
])
def test_bad_arguments_exit_2_with_a_clear_message(capsys, argv, words):
    code, out, err = main(capsys, "--sim", *argv)
    assert code == 2 and words in err and "Traceback" not in err


def test_real_cloud_without_a_project_says_how_to_set_it(capsys):
    code, out, err = main(capsys, "status")
    assert code == 2 and "--project or PROJECT_ID" in err and one_line(err)


def test_real_cloud_without_credentials_says_how_to_log_in(capsys, monkeypatch):
    monkeypatch.setenv("HOME", "/nonexistent-home")
    for cmd in (["status"], ["verify"], ["apply", "--yes"], ["bench"]):
        code, out, err = main(capsys, "--project", "my-project-123", *cmd)
        assert code == 2, (cmd, err)
        assert "gcloud auth application-default login" in err and one_line(err), (cmd, err)


def test_a_bad_config_value_names_the_flag(capsys, sim_world):
    code, out, err = main(capsys, "--sim", "--sim-state", str(sim_world.state_dir), "--zone", "us-west1-a", "status")
    assert code == 2 and "does not offer TPU v6e" in err and "--zone" in err and one_line(err)


def test_vanished_cluster(capsys, make_sim_world):
    """The cluster is deleted under a deployed service: status says so, verify and bench fail clearly."""
    world = make_sim_world("deployed")
    from rhaii_tui.config import DeployConfig
    from rhaii_tui.steps.context import StepContext

    ctx = StepContext(DeployConfig(project="rhaii-demo-project", cluster="rhaii-tpu-scaleout-cluster"), world.profile())
    op = ctx.gke.delete_cluster("rhaii-tpu-scaleout-cluster")
    ctx.gke.wait(op, poll_min=0.02, poll_max=0.1)
    sim = ["--sim", "--sim-state", str(world.state_dir)]
    code, out, err = main(capsys, *sim, "status", "--json")
    assert code == 1, "not serving any more: status exits 1"
    doc = json.loads(out)
    assert doc["serving"] is False and doc["exit_code"] == 1
    assert doc["steps"][1]["status"] == "not_started" and "does not exist" in doc["steps"][1]["summary"]
    assert doc["standing"]["first_not_done"] in (1, 2)
    for cmd in (["verify"], ["bench", "--duration", "1"]):
        code, out, err = main(capsys, *sim, *cmd)
        assert code == 1, (cmd, err)
        assert one_line(err) and "does not exist" in err, (cmd, err)


def test_bench_json_on_a_deployed_service(capsys, make_sim_world):
    world = make_sim_world("deployed")
    code, out, err = main(capsys, "--sim", "--sim-state", str(world.state_dir), "bench", "--concurrency", "4",
                          "--duration", "1.5", "--warmup", "0.2", "--json")
    doc = json.loads(out)
    assert code == (0 if doc["passed"] else 1)
    (run,) = doc["throughput"]
    r = run["result"]
    assert run["mode"] == "closed" and r["spec"]["concurrency"] == 4
    assert r["requests"] > 0 and r["ok"] == r["requests"] and r["throughput"] > 0


def test_sim_starts_a_world_in_the_background_and_reuses_it(capsys, tmp_path):
    state = tmp_path / "world"
    code, out, err = main(capsys, "--sim", "--sim-state", str(state), "--speed", "2000", "status", "--json")
    ep = json.loads((state / "endpoints.json").read_text())
    try:
        assert code == 1, err  # a fresh world is not serving
        assert json.loads(out)["steps"][1]["status"] == "not_started"
        code, out, err = main(capsys, "--sim", "--sim-state", str(state), "status")
        assert code == 1 and json.loads((state / "endpoints.json").read_text())["pid"] == ep["pid"]
        assert out.splitlines()[-1] == "standing: next: step 1 (Preflight checks)"
    finally:
        stop_process(ep["pid"])


def gone(pid: int) -> bool:
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:   # our child (ensure_world started it): reap it
            return True
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def stop_process(pid: int) -> None:
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if gone(pid):
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    gone(pid)
