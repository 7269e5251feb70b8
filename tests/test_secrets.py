"""rhaii_tui/secrets.py: file parsing with exact problems, the form, masking, preview, export 0600."""

from __future__ import annotations

import base64
import json
import logging
import pickle
import stat
from pathlib import Path

import pytest
import yaml

from rhaii_tui.secrets import (
    SecretInputError,
    SecretStr,
    export_secret_file,
    hf_secret_from_form,
    hf_token_problem,
    load_secret_files,
    parse_secret_file,
    parse_secret_text,
    pull_secret_from_form,
)

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "hf_" + "Zq7" * 11 + "x"  # 34 characters after hf_
PASSWORD = "pa55-W0rd-canary-9876"


def _pull_yaml(auths: dict, *, name="rhiis", key_under="stringData", typ="kubernetes.io/dockerconfigjson") -> str:
    cfg = json.dumps({"auths": auths})
    value = cfg if key_under == "stringData" else base64.b64encode(cfg.encode()).decode()
    return yaml.safe_dump({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": typ,
                           key_under: {".dockerconfigjson": value}})


def _auth(user="me", pw=PASSWORD):
    return {"registry.redhat.io": {"auth": base64.b64encode(f"{user}:{pw}".encode()).decode()}}


def test_secretstr_masks_everywhere():
    s = SecretStr(PASSWORD)
    assert PASSWORD not in repr(s) and PASSWORD not in str(s) and PASSWORD not in f"{s}" and PASSWORD not in f"{s!r}"
    assert s.get_secret_value() == PASSWORD and len(s) == len(PASSWORD)
    with pytest.raises(TypeError):
        pickle.dumps(s)
    with pytest.raises(AttributeError):
        s._value = "x"  # type: ignore[misc]


# ours, and the upstream ones where the team's reference material sits beside the checkout
@pytest.mark.parametrize("template", sorted((ROOT / "templates").glob("*.template")) + sorted(
    (ROOT.parent / "shared" / "reference" / "upstream" / "rhaii-on-xks-gke" / "templates").glob("*.template")),
    ids=lambda p: p.name)
def test_untouched_templates_are_refused_for_their_placeholder(template):
    with pytest.raises(SecretInputError) as ei:
        parse_secret_file(template)
    assert "placeholder" in str(ei.value)


def test_filled_templates_parse(tmp_path):
    hf = (ROOT / "templates" / "huggingface-token-secret.yaml.template").read_text()
    pull = (ROOT / "templates" / "redhat-pull-secret.yaml.template").read_text()
    auth = base64.b64encode(f"me:{PASSWORD}".encode()).decode()
    (tmp_path / "hf.yaml").write_text(hf.replace("PLACEHOLDER_HF_TOKEN", TOKEN))
    (tmp_path / "pull.yaml").write_text(pull.replace("PLACEHOLDER_REGISTRY_AUTH_BASE64", auth))
    got = load_secret_files([tmp_path / "hf.yaml", tmp_path / "pull.yaml"])
    assert got.complete
    assert got.hf.data["token"].get_secret_value() == TOKEN
    assert got.pull.registries == ("registry.redhat.io",)


@pytest.mark.parametrize("text,needle", [
    ("a: [1, 2\nb: " + PASSWORD, "not valid YAML"),
    ("", "is empty"),
    ("- just\n- a list\n", "not a Kubernetes object"),
    (yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}), "kind 'ConfigMap'"),
    (_pull_yaml(_auth(), name="rhaiis-pull-secret", typ="Opaque"), "must be kubernetes.io/dockerconfigjson"),
    (_pull_yaml(_auth()), "named 'rhiis'"),
    (_pull_yaml({"quay.io": {"auth": "eDp5"}}, name="rhaiis-pull-secret"), "not for registry.redhat.io"),
    (_pull_yaml({"registry.redhat.io": {"auth": "not base64!"}}, name="rhaiis-pull-secret"), "not valid base64"),
    (_pull_yaml({"registry.redhat.io": {"auth": base64.b64encode(b"nocolon").decode()}}, name="rhaiis-pull-secret"),
     "USERNAME:PASSWORD"),
    (yaml.safe_dump({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "rhaiis-pull-secret"},
                     "type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": "%%%"}}), "not valid base64"),
    (yaml.safe_dump({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "rhaiis-pull-secret"},
                     "type": "kubernetes.io/dockerconfigjson", "stringData": {".dockerconfigjson": "{nope"}}),
     "not valid JSON"),
    (yaml.safe_dump({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "huggingface-token"},
                     "type": "Opaque", "stringData": {"token": "abc" + PASSWORD}}), "starts with 'hf_'"),
    (yaml.safe_dump({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "huggingface-token"},
                     "type": "Opaque", "stringData": {"hf": TOKEN}}), "has no key 'token'"),
    (yaml.safe_dump({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hf-token"},
                     "type": "Opaque", "stringData": {"token": TOKEN}}), "expects huggingface-token"),
])
def test_bad_files_say_exactly_what_is_wrong_without_values(text, needle):
    with pytest.raises(SecretInputError) as ei:
        parse_secret_text(text, "my.yaml")
    msg = str(ei.value)
    assert needle in msg
    assert PASSWORD not in msg and TOKEN not in msg and "Traceback" not in msg


def test_yaml_error_does_not_quote_the_line():
    with pytest.raises(SecretInputError) as ei:
        parse_secret_text(f"stringData:\n  token: {TOKEN}\n  : [oops", "f.yaml")
    assert TOKEN not in str(ei.value) and "line" in str(ei.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(SecretInputError, match="does not exist"):
        parse_secret_file(tmp_path / "nope.yaml")
    with pytest.raises(SecretInputError, match="directory"):
        parse_secret_file(tmp_path)


@pytest.mark.parametrize("token,needle", [
    ("", "empty"), ("hf_abc", "has 3 after"), ("abc" + "x" * 34, "starts with 'hf_'"),
    ("hf_" + "a" * 30 + "!@#$", "letters and digits"), (" hf_" + "a" * 34, "spaces"),
    ("YOUR_HF_TOKEN_HERE", "placeholder"), ("PLACEHOLDER_HF_TOKEN", "placeholder"),
])
def test_hf_token_shape(token, needle):
    problem = hf_token_problem(token)
    assert problem and needle in problem
    if len(token) > 6:
        assert token.strip() not in problem
    with pytest.raises(SecretInputError):
        hf_secret_from_form(token)


def test_form_builds_dockerconfigjson_and_hf():
    hf = hf_secret_from_form(SecretStr(TOKEN))
    assert hf.name == "huggingface-token" and hf.type == "Opaque"
    pull = pull_secret_from_form("12345|svc", SecretStr(PASSWORD))
    m = pull.manifest("rhaii-inference")
    assert m["type"] == "kubernetes.io/dockerconfigjson" and m["metadata"]["namespace"] == "rhaii-inference"
    cfg = json.loads(base64.b64decode(m["data"][".dockerconfigjson"]))
    entry = cfg["auths"]["registry.redhat.io"]
    assert base64.b64decode(entry["auth"]).decode() == f"12345|svc:{PASSWORD}"
    # the built secret parses back as a valid file
    back = parse_secret_text(yaml.safe_dump(m), "round-trip")
    assert back[0].data[".dockerconfigjson"] == pull.data[".dockerconfigjson"]
    for bad_user, pw in (("", PASSWORD), ("a b", PASSWORD), ("a:b", PASSWORD), ("me", ""), ("me", PASSWORD + "\n")):
        with pytest.raises(SecretInputError):
            pull_secret_from_form(bad_user, pw)


def test_preview_and_reprs_carry_no_values(caplog):
    caplog.set_level(logging.DEBUG)
    specs = [hf_secret_from_form(TOKEN), pull_secret_from_form("me", PASSWORD)]
    for s in specs:
        text = json.dumps(s.preview("ns")) + repr(s) + str(s) + repr(s.data)
        logging.getLogger("test").info("spec %s %r", s, s)
        assert TOKEN not in text and PASSWORD not in text
        assert base64.b64encode(TOKEN.encode()).decode() not in text
    assert "registry.redhat.io" in specs[1].preview_text("ns")
    assert TOKEN not in caplog.text and PASSWORD not in caplog.text


def test_export_is_0600_and_reloads(tmp_path):
    specs = [hf_secret_from_form(TOKEN), pull_secret_from_form("me", PASSWORD)]
    path = export_secret_file(tmp_path / "out" / "secrets.yaml", specs, "rhaii-inference")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = parse_secret_file(path)
    assert {s.name for s in again} == {"huggingface-token", "rhaiis-pull-secret"}
    export_secret_file(path, specs[:1], "rhaii-inference")  # overwrite keeps 0600
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(SecretInputError):
        export_secret_file(tmp_path / "empty.yaml", [], "ns")
