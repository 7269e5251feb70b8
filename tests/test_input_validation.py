"""Input validated wherever it comes from (a --config file's values as the flags'), YAML errors that
name file, line and column without echoing content, exit codes scripts can rely on, and an atomic
render-manifests."""

from __future__ import annotations

import pytest

from rhaii_tui import cli
from rhaii_tui import manifests as m
from rhaii_tui.config import DeployConfig


@pytest.fixture(autouse=True)
def clean_env(tmp_path, monkeypatch):
    monkeypatch.setenv("RHAII_TUI_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud"))
    for name in ("PROJECT_ID", "ZONE", "CLUSTER_NAME", "NAMESPACE", "HF_TOKEN", "REGISTRY_PASSWORD",
                 "CLOUDSDK_CORE_PROJECT"):
        monkeypatch.delenv(name, raising=False)


def main(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- --config values -----------------------------------------------------------------------------------


@pytest.mark.parametrize("text,field,words", [
    ("replicas: 0", "replicas", "at least 1"),
    ("replicas: 1000", "replicas", "above 64"),
    ("replicas: abc", "replicas", "whole number"),
    ("replicas: true", "replicas", "whole number"),
    ("price_per_node_hour: cheap", "price_per_node_hour", "number in USD"),
    ("price_per_node_hour: .nan", "price_per_node_hour", "finite"),
    ("namespace: 7", "namespace", "DNS-1123"),
    ("project: 12345678", "project", "project id"),
    ("cluster: {a: 1}", "cluster", "cluster name"),
    ("image: 42", "image", "REGISTRY/PATH:TAG"),
    ("zone: us-west1-a", "zone", "does not offer TPU v6e"),
])
def test_a_bad_config_file_value_is_refused_naming_the_field(capsys, tmp_path, text, field, words):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text + "\n")
    # render-manifests sends nothing anywhere: what matters is that the value is refused up front
    code, out, err = main(capsys, "--config", str(cfg), "render-manifests", "--out", str(tmp_path / "out"))
    assert code == 2, (text, out, err)
    assert f"'{field}'" in err and words in err and str(cfg) in err, err
    assert "unexpected error" not in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_good_config_file_is_used(capsys, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("replicas: 2\nnamespace: team-a\nprice_per_node_hour: 4.5\n")
    code, out, err = main(capsys, "--config", str(cfg), "render-manifests", "--out", str(tmp_path / "out"))
    assert code == 0, err
    assert "replicas: 2" in (tmp_path / "out" / "llminferenceservice.yaml").read_text()


def test_yaml_errors_name_file_line_and_column_and_never_the_content(capsys, tmp_path):
    canary = "ya29.SecretTokenCanary123456"
    cfg = tmp_path / "token.yaml"
    cfg.write_text(f"apiVersion: v1\nstringData:\n  token: {canary}: oops\n")  # PyYAML would quote this line
    code, out, err = main(capsys, "--config", str(cfg), "render-manifests", "--out", str(tmp_path / "out"))
    assert code == 2
    assert str(cfg) in err and "line 3, column 38" in err, err
    assert canary not in err + out and "SecretTokenCanary" not in err + out


def test_a_binary_config_file_is_named(capsys, tmp_path):
    cfg = tmp_path / "blob.bin"
    cfg.write_bytes(b"\x00\xff\xfe\x80binary")
    code, out, err = main(capsys, "--config", str(cfg), "render-manifests", "--out", str(tmp_path / "out"))
    assert code == 2 and str(cfg) in err and "not a text file" in err and "Traceback" not in err


@pytest.mark.parametrize("speed", ["nan", "inf", "-1", "0"])
def test_speed_must_be_a_finite_positive_number(capsys, tmp_path, speed):
    with pytest.raises(SystemExit) as ei:
        cli.main(["--sim", "--sim-state", str(tmp_path / "w"), "--speed", speed, "status"])
    assert ei.value.code == 2
    assert "finite number greater than 0" in capsys.readouterr().err
    assert not (tmp_path / "w").exists(), "no world started"


def test_fault_rate_is_a_share_from_0_to_1(capsys, tmp_path):
    with pytest.raises(SystemExit) as ei:
        cli.main(["--sim", "--sim-state", str(tmp_path / "w"), "--fault-rate", "2", "status"])
    assert ei.value.code == 2 and "from 0 to 1" in capsys.readouterr().err
    from rhaii_tui.sim.scenarios import fault_rate_overrides, get_scenario

    s = get_scenario("flaky-api", **fault_rate_overrides(0.25, "flaky-api"))
    assert s.flaky.error_rate == 0.25 and s.google_error_rate == 0.25 and s.flaky.watch_drop_seconds == 20.0


# --- ops: bad input before anything is sent ------------------------------------------------------------


def test_ops_bad_input_is_exit_2_before_the_cloud(capsys, tmp_path):
    state = tmp_path / "w"
    code, out, err = main(capsys, "--sim", "--sim-state", str(state), "ops", "update-image", "Bad Tag!")
    assert code == 2 and "REGISTRY/PATH:TAG" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as ei:
        cli.main(["--sim", "--sim-state", str(state), "ops", "scale", "--replicas", "1000", "--yes"])
    assert ei.value.code == 2 and "above 64" in capsys.readouterr().err
    assert not state.exists(), "nothing was started or sent"


# --- status exit codes --------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario,expect", [("fresh", 1), ("partial", 1), ("deployed", 0)])
@pytest.mark.parametrize("as_json", [False, True])
def test_status_exits_0_only_when_serving(make_sim_world, capsys, scenario, expect, as_json):
    import json

    world = make_sim_world(scenario)
    code, out, err = main(capsys, "--sim", "--sim-state", str(world.state_dir), "status",
                          *(["--json"] if as_json else []))
    assert code == expect, (scenario, out, err)
    if as_json:
        doc = json.loads(out)
        assert doc["exit_code"] == expect and doc["serving"] is (expect == 0)


# --- render-manifests is atomic --------------------------------------------------------------------------


def test_render_manifests_leaves_no_partial_output_on_failure(tmp_path, monkeypatch):
    from pathlib import Path

    real = Path.write_text
    calls = [0]

    def failing(self, *a, **kw):
        calls[0] += 1
        if calls[0] == 3:
            raise OSError(28, "No space left on device")
        return real(self, *a, **kw)

    monkeypatch.setattr(Path, "write_text", failing)
    out = tmp_path / "out"
    with pytest.raises(OSError):
        m.write_manifests(DeployConfig(project="my-project-123"), out)
    assert not out.exists(), "no partial output"
    assert list(tmp_path.iterdir()) == [], "the temporary directory is removed"


def test_render_manifests_into_an_existing_directory_keeps_it_whole_on_failure(tmp_path, monkeypatch):
    from pathlib import Path

    out = tmp_path / "out"
    first = m.write_manifests(DeployConfig(project="my-project-123", replicas=3), out)
    before = {p: p.read_text() for p in first}
    real = Path.write_text
    calls = [0]

    def failing(self, *a, **kw):
        calls[0] += 1
        if calls[0] == 2:
            raise OSError(28, "No space left on device")
        return real(self, *a, **kw)

    monkeypatch.setattr(Path, "write_text", failing)
    with pytest.raises(OSError):
        m.write_manifests(DeployConfig(project="my-project-123", replicas=5), out)
    assert {p: p.read_text() for p in first} == before, "the old set is untouched, not half replaced"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_render_manifests_cli_failure_says_nothing_was_written(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, out, err = main(capsys, "--project", "my-project-123", "render-manifests", "--out", str(blocker))
    assert code == 2 and "nothing was written" in err and "Traceback" not in err


@pytest.mark.parametrize("argv,words", [
    (["bench", "--warmup", "nan"], "finite number"),
    (["verify", "--duration", "inf"], "finite number"),
    (["apply", "--poll", "nan"], "between 0 and 300"),
    (["ops", "scale", "--replicas", "65", "--yes"], "above 64"),
    (["ops", "scale", "--replicas", "0", "--yes"], "scale-to-zero"),
])
def test_bad_numbers_are_exit_2_before_anything_starts(capsys, tmp_path, argv, words):
    with pytest.raises(SystemExit) as ei:
        cli.main(["--sim", "--sim-state", str(tmp_path / "w"), *argv])
    assert ei.value.code == 2 and words in capsys.readouterr().err
    assert not (tmp_path / "w").exists()
