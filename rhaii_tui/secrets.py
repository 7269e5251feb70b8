"""The two secrets the service needs: the Red Hat registry pull secret and the Hugging Face token.

- `SecretStr`: holds a value; its repr/str/format show only a mask. Values live only in these.
- `parse_secret_file(path)` / `parse_secret_text(text)`: read a secret manifest in the templates'
  format (templates/*.template, upstream templates), refusing with the exact problem: placeholders
  still present, malformed YAML, wrong kind/type/name, missing keys, a token of the wrong shape.
  Error messages never quote the file's values (YAML errors are reduced to line and column).
- `pull_secret_from_form(username, password)`, `hf_secret_from_form(token)`: the same secrets
  from the step-3 form, validated.
- `SecretSpec.preview()`: what will be created, without values.
- `export_secret_file(path, specs)`: a manifest for kubectl, written 0600.

The manifest with values (`SecretSpec.manifest()`) exists only to be handed to the cluster.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .config import HF_SECRET_NAME, PULL_SECRET_NAME

REGISTRY = "registry.redhat.io"
DOCKERCONFIG_TYPE = "kubernetes.io/dockerconfigjson"
DOCKERCONFIG_KEY = ".dockerconfigjson"
HF_KEY = "token"
HF_TOKEN_RE = re.compile(r"^hf_[A-Za-z0-9]{30,60}$")
HF_TOKEN_URL = "https://huggingface.co/settings/tokens"
REGISTRY_ACCOUNTS_URL = "https://access.redhat.com/terms-based-registry/"

_PLACEHOLDER_RE = re.compile(
    r"PLACEHOLDER_[A-Z0-9_]+|YOUR_[A-Z0-9_]+|\b[A-Z0-9_]+_HERE\b|BASE64_ENCODED_[A-Z0-9_]+|REPLACE_ME|CHANGEME|"
    r"(?i:<(your|paste|insert)[^>]*>)")


class SecretStr:
    """A secret value. Shows as '********' everywhere; get_secret_value() is the only way out."""

    __slots__ = ("_value",)

    def __init__(self, value: "str | SecretStr") -> None:
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if not isinstance(value, str):
            raise TypeError("SecretStr holds text")
        object.__setattr__(self, "_value", value)

    def get_secret_value(self) -> str:
        return self._value

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("SecretStr is immutable")

    def __repr__(self) -> str:
        return "SecretStr('********')" if self._value else "SecretStr('')"

    def __str__(self) -> str:
        return "********" if self._value else ""

    def __format__(self, spec: str) -> str:
        return str(self)

    def __len__(self) -> int:
        return len(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SecretStr):
            return self._value == other._value
        return NotImplemented

    def __hash__(self) -> int:
        return hash(("SecretStr", self._value))

    def __reduce__(self) -> Any:
        raise TypeError("SecretStr cannot be pickled")

    def __getstate__(self) -> Any:
        raise TypeError("SecretStr cannot be pickled")


def reveal(value: "str | SecretStr") -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


class SecretInputError(ValueError):
    """A secret file or form value is not usable. The message says exactly why and never contains a
    value."""

    def __init__(self, message: str, *, source: str = "", field_name: str = "") -> None:
        self.source = source
        self.field_name = field_name
        super().__init__(message)


@dataclass(frozen=True)
class SecretSpec:
    """One secret to create. `data` maps key -> value (raw, not base64)."""

    name: str
    type: str
    data: dict[str, SecretStr] = field(repr=False)
    source: str = "form"  # "form" or the file path it came from
    registries: tuple[str, ...] = ()  # pull secret: the registries it has credentials for

    def __repr__(self) -> str:
        return (f"SecretSpec(name={self.name!r}, type={self.type!r}, keys={sorted(self.data)!r}, "
                f"source={self.source!r})")

    @property
    def kind(self) -> str:
        return "pull" if self.type == DOCKERCONFIG_TYPE else "hf"

    def manifest(self, namespace: str) -> dict[str, Any]:
        """The Secret object WITH values (base64 data). Hand it to the cluster; never log it."""
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": self.name, "namespace": namespace,
                         "labels": {"app.kubernetes.io/managed-by": "rhaii-tui"}},
            "type": self.type,
            "data": {k: base64.b64encode(v.get_secret_value().encode()).decode() for k, v in self.data.items()},
        }

    def values(self) -> list[str]:
        """Every form of every value (raw, base64, and the registry auth inside) to scrub from text."""
        out: list[str] = []
        for v in self.data.values():
            raw = v.get_secret_value()
            out += [raw, base64.b64encode(raw.encode()).decode()]
            if self.type == DOCKERCONFIG_TYPE:
                try:
                    for entry in (json.loads(raw).get("auths") or {}).values():
                        for k in ("auth", "password", "identitytoken"):
                            if isinstance(entry, dict) and entry.get(k):
                                out.append(str(entry[k]))
                                if k == "auth":
                                    try:
                                        out += base64.b64decode(entry[k]).decode("utf-8", "ignore").split(":", 1)[1:]
                                    except (binascii.Error, ValueError):
                                        pass
                except (ValueError, AttributeError):
                    pass
        return [s for s in out if s and len(s) >= 4]

    def preview(self, namespace: str) -> dict[str, Any]:
        """What will be created, without any value."""
        keys = {k: f"<hidden, {len(v)} characters>" for k, v in self.data.items()}
        lines = [f"Secret {self.name} ({self.type}) in namespace {namespace}",
                 f"  keys: {', '.join(sorted(self.data))}"]
        if self.registries:
            lines.append(f"  credentials for: {', '.join(self.registries)}")
        lines.append(f"  from: {self.source}")
        return {"name": self.name, "namespace": namespace, "type": self.type, "keys": keys,
                "registries": list(self.registries), "source": self.source, "text": "\n".join(lines)}

    def preview_text(self, namespace: str) -> str:
        return str(self.preview(namespace)["text"])


# --- validation -----------------------------------------------------------------------------------


def hf_token_problem(token: "str | SecretStr") -> str | None:
    """Why this is not a Hugging Face token (without quoting it), or None."""
    t = reveal(token)
    if not t or not t.strip():
        return f"The Hugging Face token is empty. Create a read token at {HF_TOKEN_URL}."
    if t != t.strip() or any(c.isspace() for c in t):
        return "The Hugging Face token contains spaces or line breaks; paste it again without them."
    if _PLACEHOLDER_RE.search(t):
        return ("The Hugging Face token is still the template's placeholder; replace it with your token from "
                f"{HF_TOKEN_URL}.")
    if not t.startswith("hf_"):
        return (f"A Hugging Face token starts with 'hf_' (this one does not); copy a token from {HF_TOKEN_URL}.")
    body = t[3:]
    if not body.isalnum() or not body.isascii():
        return "A Hugging Face token is 'hf_' followed by letters and digits only; this one has other characters."
    if not HF_TOKEN_RE.match(t):
        return (f"A Hugging Face token is 'hf_' followed by about 34 letters and digits; this one has "
                f"{len(body)} after 'hf_'. Copy the whole token from {HF_TOKEN_URL}.")
    return None


def hf_secret_from_form(token: "str | SecretStr") -> SecretSpec:
    problem = hf_token_problem(token)
    if problem:
        raise SecretInputError(problem, source="form", field_name="hf_token")
    return SecretSpec(HF_SECRET_NAME, "Opaque", {HF_KEY: SecretStr(reveal(token))}, source="form")


def pull_secret_from_form(username: str, password: "str | SecretStr", registry: str = REGISTRY) -> SecretSpec:
    """dockerconfigjson for registry.redhat.io from a user name and a password or token."""
    user = (username or "").strip()
    pw = reveal(password)
    if not user:
        raise SecretInputError(f"The registry user name is empty. Use your Red Hat login or a registry service "
                               f"account name (see {REGISTRY_ACCOUNTS_URL}).", field_name="registry_user")
    if any(c.isspace() for c in user) or ":" in user:
        raise SecretInputError("The registry user name must not contain spaces or ':'.", field_name="registry_user")
    if _PLACEHOLDER_RE.search(user):
        raise SecretInputError("The registry user name is still a placeholder; enter your own.",
                               field_name="registry_user")
    if not pw:
        raise SecretInputError("The registry password or token is empty.", field_name="registry_password")
    if pw != pw.strip() or "\n" in pw:
        raise SecretInputError("The registry password or token has leading/trailing spaces or line breaks; "
                               "paste it again without them.", field_name="registry_password")
    if _PLACEHOLDER_RE.search(pw):
        raise SecretInputError("The registry password is still a placeholder; enter your own.",
                               field_name="registry_password")
    auth = base64.b64encode(f"{user}:{pw}".encode()).decode()
    config = json.dumps({"auths": {registry: {"username": user, "password": pw, "auth": auth}}},
                        separators=(",", ":"))
    return SecretSpec(PULL_SECRET_NAME, DOCKERCONFIG_TYPE, {DOCKERCONFIG_KEY: SecretStr(config)},
                      source="form", registries=(registry,))


# --- files ----------------------------------------------------------------------------------------


def _yaml_problem(e: Exception) -> str:
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or "invalid YAML"
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"is not valid YAML ({problem}{where})"


def parse_secret_text(text: str, source: str = "<text>") -> list[SecretSpec]:
    """Every secret in a (multi-document) YAML text, validated. Raises SecretInputError."""
    import yaml

    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        raise SecretInputError(f"{source} {_yaml_problem(e)}.", source=source) from None
    if not docs:
        raise SecretInputError(f"{source} is empty: it should hold a Secret manifest (see templates/).", source=source)
    specs = []
    for i, doc in enumerate(docs):
        where = source if len(docs) == 1 else f"{source} (document {i + 1})"
        specs.append(_parse_doc(doc, where, source))
    return specs


def parse_secret_file(path: str | Path) -> list[SecretSpec]:
    p = Path(path).expanduser()
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise SecretInputError(f"{p} does not exist. Create it from templates/ or use the form in step 3.",
                               source=str(p)) from None
    except IsADirectoryError:
        raise SecretInputError(f"{p} is a directory; give the secret file itself.", source=str(p)) from None
    except OSError as e:
        raise SecretInputError(f"Cannot read {p}: {e.strerror}.", source=str(p)) from None
    except UnicodeDecodeError:
        raise SecretInputError(f"{p} is not a text file (a YAML Secret manifest is expected).", source=str(p)) from None
    return parse_secret_text(text, str(p))


def _parse_doc(doc: Any, where: str, source: str) -> SecretSpec:
    def fail(msg: str) -> SecretInputError:
        return SecretInputError(f"{where}: {msg}", source=source)

    if not isinstance(doc, dict):
        raise fail("is not a Kubernetes object (expected a mapping with apiVersion, kind, metadata).")
    if doc.get("kind") != "Secret":
        raise fail(f"has kind {doc.get('kind')!r}; a Secret is expected.")
    if doc.get("apiVersion") not in ("v1", None):
        raise fail(f"has apiVersion {doc.get('apiVersion')!r}; Secrets are apiVersion v1.")
    meta = doc.get("metadata") or {}
    name = meta.get("name") if isinstance(meta, dict) else None
    stype = doc.get("type") or "Opaque"
    data = doc.get("data") or {}
    sdata = doc.get("stringData") or {}
    if not isinstance(data, dict) or not isinstance(sdata, dict):
        raise fail("data and stringData must be mappings of key: value.")

    values: dict[str, str] = {}
    for k, v in data.items():
        if v is None:
            raise fail(f"data.{k} is empty.")
        sv = str(v).strip()
        if _PLACEHOLDER_RE.search(sv):
            raise fail(f"data.{k} still holds the template placeholder {_PLACEHOLDER_RE.search(sv).group(0)}; "  # type: ignore[union-attr]
                       "replace it with your value (base64-encoded), or use the form in step 3.")
        try:
            values[str(k)] = base64.b64decode(sv.replace("\n", ""), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise fail(f"data.{k} is not valid base64 (values under data: are base64; put plain text under "
                       "stringData: instead).") from None
    for k, v in sdata.items():
        if v is None:
            raise fail(f"stringData.{k} is empty.")
        values[str(k)] = str(v)
    for k, v in values.items():
        m = _PLACEHOLDER_RE.search(v)
        if m:
            raise fail(f"{k} still holds the template placeholder {m.group(0)}; replace it with your value, or "
                       "use the form in step 3.")

    if stype == DOCKERCONFIG_TYPE or name == PULL_SECRET_NAME:
        return _pull_from_values(name, stype, values, where, source, fail)
    if stype == "Opaque" and (name == HF_SECRET_NAME or HF_KEY in values):
        return _hf_from_values(name, values, source, fail)
    raise fail(f"is a Secret named {name!r} of type {stype!r}; expected {PULL_SECRET_NAME} "
               f"({DOCKERCONFIG_TYPE}) or {HF_SECRET_NAME} (Opaque, key {HF_KEY}).")


def _pull_from_values(name: Any, stype: str, values: dict[str, str], where: str, source: str, fail: Any) -> SecretSpec:
    if name != PULL_SECRET_NAME:
        raise fail(f"the pull secret is named {name!r}; the service expects {PULL_SECRET_NAME} (set metadata.name).")
    if stype != DOCKERCONFIG_TYPE:
        raise fail(f"the pull secret has type {stype!r}; it must be {DOCKERCONFIG_TYPE} (set type:).")
    raw = values.get(DOCKERCONFIG_KEY)
    if raw is None:
        raise fail(f"has no {DOCKERCONFIG_KEY} key (under data: as base64, or under stringData: as JSON).")
    extra = sorted(set(values) - {DOCKERCONFIG_KEY})
    if extra:
        raise fail(f"has unexpected key(s) {', '.join(extra)}; a dockerconfigjson secret has only {DOCKERCONFIG_KEY}.")
    try:
        cfg = json.loads(raw)
    except ValueError as e:
        raise fail(f"{DOCKERCONFIG_KEY} is not valid JSON (line {getattr(e, 'lineno', '?')}, column "
                   f"{getattr(e, 'colno', '?')}); expected {{\"auths\": {{\"{REGISTRY}\": {{\"auth\": ...}}}}}}.") from None
    auths = cfg.get("auths") if isinstance(cfg, dict) else None
    if not isinstance(auths, dict) or not auths:
        raise fail(f"{DOCKERCONFIG_KEY} has no \"auths\" entries; it needs credentials for {REGISTRY}.")
    entry = None
    for reg, e in auths.items():
        host = re.sub(r"^https?://", "", str(reg)).split("/", 1)[0]
        if host == REGISTRY:
            entry = e
    if entry is None:
        raise fail(f"{DOCKERCONFIG_KEY} has credentials for {', '.join(map(str, auths))} but not for {REGISTRY}, "
                   "where the vLLM image lives.")
    if not isinstance(entry, dict):
        raise fail(f"the {REGISTRY} entry in {DOCKERCONFIG_KEY} must be an object with \"auth\".")
    auth = entry.get("auth")
    if auth:
        try:
            decoded = base64.b64decode(str(auth), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise fail(f"the \"auth\" for {REGISTRY} is not valid base64 of USERNAME:PASSWORD.") from None
        if ":" not in decoded or not decoded.split(":", 1)[0] or not decoded.split(":", 1)[1]:
            raise fail(f"the \"auth\" for {REGISTRY} must be base64 of USERNAME:PASSWORD (both parts non-empty).")
    elif not (entry.get("username") and entry.get("password")):
        raise fail(f"the {REGISTRY} entry has neither \"auth\" nor \"username\" + \"password\".")
    registries = tuple(sorted(re.sub(r"^https?://", "", str(r)).split("/", 1)[0] for r in auths))
    return SecretSpec(PULL_SECRET_NAME, DOCKERCONFIG_TYPE, {DOCKERCONFIG_KEY: SecretStr(raw)}, source=source,
                      registries=registries)


def _hf_from_values(name: Any, values: dict[str, str], source: str, fail: Any) -> SecretSpec:
    if name != HF_SECRET_NAME:
        raise fail(f"the Hugging Face secret is named {name!r}; the service expects {HF_SECRET_NAME} "
                   "(set metadata.name).")
    if HF_KEY not in values:
        raise fail(f"has no key {HF_KEY!r}; the service reads the token from key {HF_KEY}.")
    extra = sorted(set(values) - {HF_KEY})
    if extra:
        raise fail(f"has unexpected key(s) {', '.join(extra)}; only {HF_KEY} is used.")
    token = values[HF_KEY].strip()
    problem = hf_token_problem(token)
    if problem:
        raise fail(problem)
    return SecretSpec(HF_SECRET_NAME, "Opaque", {HF_KEY: SecretStr(token)}, source=source)


@dataclass
class SecretsInput:
    """The secrets the user supplied (files and/or form), by role."""

    pull: SecretSpec | None = None
    hf: SecretSpec | None = None

    @property
    def specs(self) -> list[SecretSpec]:
        return [s for s in (self.pull, self.hf) if s is not None]

    @property
    def complete(self) -> bool:
        return self.pull is not None and self.hf is not None

    def missing(self) -> list[str]:
        return [n for n, s in ((PULL_SECRET_NAME, self.pull), (HF_SECRET_NAME, self.hf)) if s is None]

    def add(self, spec: SecretSpec) -> None:
        if spec.kind == "pull":
            self.pull = spec
        else:
            self.hf = spec

    def values(self) -> list[str]:
        return [v for s in self.specs for v in s.values()]


def load_secret_files(paths: Iterable[str | Path]) -> SecretsInput:
    """Parse the given files (each may hold one or both secrets). Raises SecretInputError on the first
    problem."""
    out = SecretsInput()
    for p in paths:
        for spec in parse_secret_file(p):
            out.add(spec)
    return out


def export_secret_file(path: str | Path, specs: Iterable[SecretSpec], namespace: str) -> Path:
    """Write the secrets as a YAML manifest (kubectl apply -f) with mode 0600."""
    import yaml

    target = Path(path).expanduser()
    docs = [s.manifest(namespace) for s in specs]
    if not docs:
        raise SecretInputError("There is no secret to export yet; fill in the form or load a file first.")
    text = yaml.safe_dump_all(docs, default_flow_style=False, sort_keys=False)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, ("# Secrets for namespace " + namespace + ": keep this file private (mode 0600).\n"
                          + text).encode())
        finally:
            os.close(fd)
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    except OSError as e:
        raise SecretInputError(f"Cannot write {target}: {e.strerror}. Choose a writable path.") from None
    return target


__all__ = ["SecretStr", "reveal", "SecretInputError", "SecretSpec", "SecretsInput", "hf_token_problem",
           "hf_secret_from_form", "pull_secret_from_form", "parse_secret_text", "parse_secret_file",
           "load_secret_files", "export_secret_file", "REGISTRY", "DOCKERCONFIG_TYPE"]
