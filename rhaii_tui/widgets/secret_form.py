"""SecretForm: one of the two secrets, from an existing YAML file or typed into a form.

    form = SecretForm("hf", id="hf-form")         # Hugging Face token: one masked field
    form = SecretForm("pull", id="pull-form")     # registry pull secret: user + masked password/token
    form.spec      -> SecretSpec | None            # the valid secret (values inside SecretStr only)
    form.problem   -> str                          # why it is not usable (never quotes a value)
    form.clear_values()                            # empty the typed fields (after apply)
    on SecretForm.Changed: event.form, event.spec, event.problem, event.others

A file path wins over the form: it is read and validated (rhaii_tui.secrets.parse_secret_file:
placeholders, malformed YAML, wrong type or name are refused with the exact problem) in a worker.
The form is checked as you type (the token's hf_ prefix and length). Values never leave the
Input widgets except as SecretStr; messages about them never contain them.
"""

from __future__ import annotations

from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.message import Message
from textual.widgets import Input, Label, Static

from ..config import HF_SECRET_NAME, PULL_SECRET_NAME
from ..secrets import (
    DOCKERCONFIG_TYPE,
    HF_TOKEN_URL,
    REGISTRY,
    REGISTRY_ACCOUNTS_URL,
    SecretInputError,
    SecretSpec,
    SecretStr,
    hf_token_problem,
    pull_secret_from_form,
)

KINDS = {
    "pull": (PULL_SECRET_NAME, DOCKERCONFIG_TYPE, "Red Hat registry pull secret"),
    "hf": (HF_SECRET_NAME, "Opaque", "Hugging Face token"),
}


class SecretForm(Vertical):
    """One secret: a file path, or the form fields. Posts Changed whenever its outcome changes."""

    DEFAULT_CSS = """
    SecretForm {
        height: auto;
        border: round $primary 40%;
        border-title-color: $accent;
        border-title-style: bold;
        padding: 0 1;
        margin: 0 0 1 0;
        &.-ready { border: round $success 60%; }
        &.-problem { border: round $error; }
        .secret-row { height: 1; }
        .secret-label { width: 12; color: $text; }
        .secret-row Input { width: 1fr; }
        .secret-or { color: $text-muted; height: 1; }
        .secret-msg { height: auto; color: $text-muted; }
        .secret-msg.-error { color: $error; }
        .secret-msg.-ok { color: $success; }
    }
    """

    class Changed(Message):
        """The form's outcome changed: a usable spec, a problem, or nothing entered."""

        def __init__(self, form: "SecretForm", spec: SecretSpec | None, problem: str,
                     others: list[SecretSpec]) -> None:
            super().__init__()
            self.form = form
            self.spec = spec
            self.problem = problem
            self.others = others  # the other secret, when the file holds both

        @property
        def control(self) -> "SecretForm":
            return self.form

    class _FileParsed(Message):
        def __init__(self, path: str, specs: list[SecretSpec], problem: str) -> None:
            super().__init__()
            self.path = path
            self.specs = specs
            self.problem = problem

    def __init__(self, kind: str, *, id: str | None = None, classes: str | None = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        super().__init__(id=id, classes=classes)
        self.kind = kind
        self.secret_name, self.secret_type, self.title = KINDS[kind]
        self.spec: SecretSpec | None = None
        self.others: list[SecretSpec] = []
        self.problem = ""
        self.mode = "empty"  # "empty" | "form" | "file"
        self._file_specs: list[SecretSpec] | None = None
        self._file_problem = ""
        self._file_path = ""
        self._checking_file = False
        self._note = ""  # said while the form is empty (e.g. "created in the cluster")

    # composition ------------------------------------------------------------------------------
    SHORT_TITLES = {"pull": "Pull secret", "hf": "HF token"}

    def on_resize(self) -> None:
        # a border title is cut, not wrapped: in 80 columns the short one keeps the secret's name whole
        full = f"{self.title} · {self.secret_name}"
        self.border_title = full if not self.size.width or len(full) + 6 <= self.size.width else \
            f"{self.SHORT_TITLES.get(self.kind, self.title)} · {self.secret_name}"

    def compose(self) -> ComposeResult:
        self.border_title = f"{self.title} · {self.secret_name}"
        with Horizontal(classes="secret-row"):
            yield Label("From file", classes="secret-label")
            yield Input(placeholder="optional: a filled-in secret YAML (templates/), or type it below",
                        id=f"{self.kind}-file", compact=True)
        if self.kind == "hf":
            with Horizontal(classes="secret-row"):
                yield Label("Token", classes="secret-label")
                yield Input(placeholder="hf_… (a read token; hidden as you type)", password=True,
                            id="hf-token", compact=True)
        else:
            with Horizontal(classes="secret-row"):
                yield Label("User", classes="secret-label")
                yield Input(placeholder="Red Hat login or registry service account", id="pull-user", compact=True)
            with Horizontal(classes="secret-row"):
                yield Label("Password", classes="secret-label")
                yield Input(placeholder="password or registry token (hidden as you type)", password=True,
                            id="pull-password", compact=True)
        yield Static(self._hint(), classes="secret-msg")

    def _hint(self) -> Content:
        if self.kind == "hf":
            return Content.assemble(("A read token from ", "$text-muted"), HF_TOKEN_URL)
        return Content.assemble((f"For {REGISTRY}; service accounts: ", "$text-muted"), REGISTRY_ACCOUNTS_URL)

    @property
    def note(self) -> str:
        """The note shown since the last clear_values() (empty once the user types again)."""
        return self._note

    # reading ---------------------------------------------------------------------------------
    def _value(self, input_id: str) -> str:
        return self.query_one(f"#{input_id}", Input).value

    @property
    def file_path(self) -> str:
        return self._value(f"{self.kind}-file").strip()

    def _form_filled(self) -> bool:
        if self.kind == "hf":
            return bool(self._value("hf-token"))
        return bool(self._value("pull-user") or self._value("pull-password"))

    def _form_outcome(self) -> tuple[SecretSpec | None, str, bool]:
        """(spec, problem, soft): soft problems are "still typing" hints, not errors."""
        if self.kind == "hf":
            token = SecretStr(self._value("hf-token"))
            problem = hf_token_problem(token)
            if problem:
                return None, problem, False
            from ..secrets import hf_secret_from_form

            return hf_secret_from_form(token), "", False
        user = self._value("pull-user")
        password = SecretStr(self._value("pull-password"))
        if not user.strip() or not password:
            missing = "user name" if not user.strip() else "password or token"
            return None, f"Enter the registry {missing} too.", True
        try:
            return pull_secret_from_form(user, password), "", False
        except SecretInputError as e:
            return None, str(e), False

    # live checks -----------------------------------------------------------------------------
    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        event.stop()
        if event.value:
            self._note = ""
        if event.input.id == f"{self.kind}-file":
            path = event.value.strip()
            self._file_specs, self._file_problem, self._file_path = None, "", path
            if path:
                self._checking_file = True
                self._parse_file(path)
        self._refresh()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == f"{self.kind}-file" and event.value.strip():
            self._checking_file = True
            self._parse_file(event.value.strip())
        self._refresh()

    @work(thread=True, exclusive=True, group="secret-file", exit_on_error=False)
    def _parse_file(self, path: str) -> None:
        from ..secrets import parse_secret_file

        try:
            specs = parse_secret_file(path)
            problem = ""
        except SecretInputError as e:
            specs, problem = [], str(e)
        except Exception as e:  # noqa: BLE001 - a file problem is a message, never a traceback
            specs, problem = [], f"Cannot read {path}: {e.__class__.__name__}."
        self.post_message(self._FileParsed(path, specs, problem))

    @on(_FileParsed)
    def _file_parsed(self, event: "SecretForm._FileParsed") -> None:
        event.stop()
        if event.path != self.file_path:
            return  # the field changed since
        self._checking_file = False
        self._file_specs, self._file_problem = event.specs, event.problem
        self._refresh()

    def _file_outcome(self) -> tuple[SecretSpec | None, str, list[SecretSpec]]:
        path = self.file_path
        if self._file_specs is None:
            return None, f"Checking {path}…" if self._checking_file else "", []
        if self._file_problem:
            return None, self._file_problem, []
        mine = [s for s in self._file_specs if s.name == self.secret_name]
        others = [s for s in self._file_specs if s.name != self.secret_name]
        if not mine:
            held = ", ".join(f"{s.name} ({s.type})" for s in self._file_specs)
            return None, (f"{path} holds {held}, not {self.secret_name} ({self.secret_type}); give that file "
                          f"for the other secret, or a file with {self.secret_name}."), []
        return mine[-1], "", others

    def _refresh(self) -> None:
        others: list[SecretSpec] = []
        soft = False
        if self.file_path:
            self.mode = "file"
            spec, problem, others = self._file_outcome()
            soft = self._file_specs is None
        elif self._form_filled():
            self.mode = "form"
            spec, problem, soft = self._form_outcome()
        else:
            self.mode, spec, problem = "empty", None, ""
        changed = spec != self.spec or problem != self.problem or \
            [s.name for s in others] != [s.name for s in self.others]
        self.spec, self.problem, self.others = spec, problem, others
        self._show(soft)
        if changed:
            self.post_message(self.Changed(self, spec, problem, others))

    def _show(self, soft: bool) -> None:
        msg = self.query_one(".secret-msg", Static)
        msg.remove_class("-error", "-ok")
        if self.spec is not None:
            where = f"from {self.file_path}" if self.mode == "file" else "from the form"
            extra = ""
            if self.mode == "file" and self._form_filled():
                extra = " (the file wins: the typed values are not used)"
            if self.others:
                extra += f"; the file also holds {', '.join(s.name for s in self.others)}"
            msg.update(Content.assemble(("✔ ", "bold"),
                                        f"Ready {where}: {self.secret_name} ({self.secret_type}){extra}."))
            msg.add_class("-ok")
        elif self.problem:
            msg.update(Content.assemble(("… " if soft else "✘ ", "bold"), self.problem))
            msg.set_class(not soft, "-error")
        elif self._note:
            msg.update(Content.assemble(("✔ ", "bold"), self._note))
            msg.add_class("-ok")
        else:
            msg.update(self._hint())
        self.set_class(self.spec is not None or bool(self._note), "-ready")
        self.set_class(self.spec is None and bool(self.problem) and not soft, "-problem")

    # actions ----------------------------------------------------------------------------------
    def set_file(self, path: str | Path) -> None:
        self.query_one(f"#{self.kind}-file", Input).value = str(path)

    def clear_values(self, note: str = "") -> None:
        """Empty the typed fields (e.g. after apply: the values are in the cluster now) and say `note`
        until the next edit. The file path stays."""
        self._note = note
        ids = ["hf-token"] if self.kind == "hf" else ["pull-user", "pull-password"]
        for input_id in ids:
            self.query_one(f"#{input_id}", Input).value = ""
        self._refresh()
