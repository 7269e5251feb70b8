"""Step 3 · Namespace and secrets.

For each of the two secrets (registry pull secret, Hugging Face token) two ways in: an existing
YAML file (validated: placeholders, malformed YAML, wrong type or name are refused with the exact
problem) or the form (masked fields; the token's shape is checked as you type). The preview shows
what will be created without any value. Apply (idempotent, `steps.secrets.apply_secrets`) creates
the namespace and the secrets, then the page shows both as present in the cluster and empties the
typed fields.

Secret values live in the Input widgets while typed and in SecretStr after that (the shared
StepContext's `secrets`, memory only). They never reach notifications, logs, the state file or
error text (errors are scrubbed of every value form).
"""

from __future__ import annotations

from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.widgets import Button, Label, Static

from ..config import DeployConfig
from ..secrets import SecretsInput
from ..steps.base import Status, StepState
from ..widgets.secret_form import SecretForm
from . import register_step_screen
from .base import StepScreen

NOT_CONNECTED = ("Not connected to a cloud: start the wizard with Google credentials "
                 "(gcloud auth application-default login) or with --sim.")
SECRET_ROWS = (("rhaiis-pull-secret", "kubernetes.io/dockerconfigjson", ".dockerconfigjson"),
               ("huggingface-token", "Opaque", "token"))


class _Preview:
    """What steps.secrets.preview needs from a context: the config (values never looked at)."""

    def __init__(self, cfg: DeployConfig) -> None:
        self.cfg = cfg


class ClusterRead(Message, bubble=False):
    def __init__(self, gen: int, state: Any, statuses: list[Any] | None, running: bool, error: str = "",
                 fix: str = "") -> None:
        super().__init__()
        self.gen, self.state, self.statuses, self.running = gen, state, statuses, running
        self.error, self.fix = error, fix


class ApplyProgress(Message, bubble=False):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class ApplyDone(Message, bubble=False):
    def __init__(self, result: Any = None, error: str = "", fix: str = "") -> None:
        super().__init__()
        self.result = result
        self.error = error
        self.fix = fix


@register_step_screen(3)
class SecretsScreen(StepScreen):
    """Step 3: the two secret forms, the preview, apply, and what the cluster holds."""

    DEFAULT_CSS = """
    SecretsScreen {
        .step-state { max-height: 4; }  /* wraps: the summary and its fix, whole at 80 columns */
        .step-commands CommandList { max-height: 4; }
        #sc-body { height: 1fr; padding: 0 1 0 0; }
        #sc-preview { height: auto; border: round $primary 50%; border-title-color: $accent;
                      border-title-style: bold; padding: 0 1; margin: 0 0 1 0; }
        #sc-actions { height: 1; }
        #sc-actions Button { margin: 0 2 0 0; }
        #sc-status { width: 1fr; color: $text-muted; text-wrap: nowrap; text-overflow: ellipsis; }
        #sc-status.-error { color: $error; }
        #sc-error { display: none; height: auto; border: round $error; padding: 0 1; margin: 0 0 1 0; }
        #sc-error.-shown { display: block; }
        #sc-cluster { height: auto; border: round $primary 50%; border-title-color: $accent;
                      border-title-style: bold; padding: 0 1; margin: 0 0 1 0; }
        #sc-cluster.-done { border: round $success 60%; }
    }
    """

    BINDINGS = [
        Binding("r", "refresh", "Refresh", tooltip="Read the namespace and the secrets again"),
        Binding("ctrl+s", "apply", "Apply", tooltip="Create or update the namespace and the secrets"),
    ]

    def __init__(self, number: int = 3, **kwargs: Any) -> None:
        super().__init__(number, **kwargs)
        self._gen = 0
        self._applying = False
        self._cluster_running = False
        self._local = SecretsInput()  # used while not connected (the preview still works)
        self._seeded = False

    # composition -------------------------------------------------------------------------------
    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="sc-body"):
            yield Static("", id="sc-error")
            cluster_box = Static(Content.styled("Not read yet.", "$text-muted"), id="sc-cluster")
            cluster_box.border_title = f"In the cluster · namespace {self.cfg.namespace}"
            yield cluster_box
            yield SecretForm("pull", id="sc-pull")
            yield SecretForm("hf", id="sc-hf")
            preview_box = Static(self._preview_content(), id="sc-preview")
            preview_box.border_title = "What Apply will create (values hidden)"
            yield preview_box
            with Horizontal(id="sc-actions"):
                yield Button("Apply", id="sc-apply", compact=True, variant="primary", disabled=True,
                             tooltip="Create or update the namespace and the secrets (ctrl+s); idempotent")
                yield Label("", id="sc-status")

    def on_mount(self) -> None:  # StepScreen.on_mount runs too
        self.watch(self.app, "profile", self._profile_changed, init=False)

    # the secrets entered ----------------------------------------------------------------------
    def secrets_input(self) -> SecretsInput:
        ctx = self.ctx
        return ctx.secrets if ctx is not None else self._local

    @on(SecretForm.Changed)
    def _form_changed(self, event: SecretForm.Changed) -> None:
        event.stop()
        inp = self.secrets_input()
        form = event.form
        if event.spec is not None:
            inp.add(event.spec)
            for other in event.others:  # the file holds the other secret too: use it when that one is empty
                other_form = self.query_one("#sc-hf" if form.kind == "pull" else "#sc-pull", SecretForm)
                if other_form.mode == "empty":
                    inp.add(other)
        elif not (form.mode == "empty" and form.note):
            # what is there now is not usable (or was erased): never apply an older value behind the
            # user's back. Only an applied-and-cleared form keeps its secret (memory only).
            setattr(inp, form.kind, None)
        self._show_preview()

    def _show_preview(self) -> None:
        box = self.query_one("#sc-preview", Static)
        box.update(self._preview_content())
        self._update_apply()

    def _preview_content(self) -> Content:
        from ..steps.secrets import preview

        inp = self.secrets_input()
        pv = preview(_Preview(self.cfg), inp)
        # A secret in the cluster whose typed values were applied and cleared is not to create again,
        # nor to enter: the preview says what Apply would change now, against what the cluster has.
        in_cluster = getattr(self, "_in_cluster", set())
        applied = {f.secret_name for f in self.query(SecretForm) if f.mode == "empty" and f.note}
        kept = [i for i in pv["secrets"] if i["name"] in in_cluster and i["name"] in applied]
        items = [i for i in pv["secrets"] if i not in kept]
        missing = [n for n in pv["missing"] if n not in in_cluster]
        lines: list[Any] = [Content.assemble(("• ", "$accent"), f"Namespace {pv['namespace']} (created if absent)")]
        for item in items:
            keys = ", ".join(f"{k} {v}" for k, v in sorted(item["keys"].items()))
            lines.append(Content.assemble(("• ", "$accent"), "Secret ", (item["name"], "bold"),
                                          f" ({item['type']}): {keys}, from {item['source']}"))
        if missing:
            lines.append(Content.assemble(("○ ", "$text-muted"),
                                          (f"Still to enter: {', '.join(missing)}", "$text-muted")))
        if not items and not missing and in_cluster:
            names = ", ".join(sorted(in_cluster))
            lines = [Content.assemble(("✔ ", "bold $success"), f"Nothing to create: {names} "
                                      f"{'is' if len(in_cluster) == 1 else 'are'} in the cluster. "
                                      "Type new values to replace one.")]
        return Content("\n").join(lines)

    def _update_apply(self) -> None:
        inp = self.secrets_input()
        ready = bool(inp.specs) and self.ctx is not None and self._cluster_running and not self._applying
        self.query_one("#sc-apply", Button).disabled = not ready

    # hooks ------------------------------------------------------------------------------------
    def step_entered(self) -> None:
        self._seed_from_files()
        if not self._applying:  # every visit: the cluster may have changed since (step 2 finished)
            self.read_cluster()

    def _seed_from_files(self) -> None:
        """Secret files given in step 1 show up here as the file path of their form."""
        if self._seeded:
            return
        self._seeded = True
        inp = self.secrets_input()
        for spec, sel in ((inp.pull, "#sc-pull"), (inp.hf, "#sc-hf")):
            form = self.query_one(sel, SecretForm)
            if spec is not None and spec.source != "form" and form.mode == "empty":
                form.set_file(spec.source)
        self._show_preview()

    def config_changed(self, cfg: DeployConfig) -> None:
        self.query_one("#sc-cluster", Static).border_title = f"In the cluster · namespace {cfg.namespace}"
        self._show_preview()
        if self.is_current:
            self.read_cluster()

    def _profile_changed(self, profile: Any) -> None:
        self._seeded = False
        # the typed secrets stay in the forms; carry them into the new connection's context
        ctx = self.ctx
        if ctx is not None:
            for form in self.query(SecretForm):
                if form.spec is not None:
                    ctx.secrets.add(form.spec)
        self._show_preview()
        if self.is_current:
            self.step_entered()

    # reading the cluster ----------------------------------------------------------------------
    def action_refresh(self) -> None:
        self.read_cluster()

    def read_cluster(self) -> None:
        ctx = self.ctx
        if ctx is None:
            self._status(NOT_CONNECTED, error=True)
            self._update_apply()
            return
        self._gen += 1
        self._status(f"Reading namespace {self.cfg.namespace}…")
        self._read_worker(ctx, self._gen)

    @work(thread=True, exclusive=True, group="secrets-read", exit_on_error=False)
    def _read_worker(self, ctx: Any, gen: int) -> None:
        from ..steps import secrets as step

        try:
            state = step.probe(ctx)
            info = ctx.cluster()
            running = info is not None and info.running
            statuses = step.secret_statuses(ctx) if running else None
        except Exception as e:  # noqa: BLE001
            message, fix = _safe_error(e, ctx)
            self._post(ClusterRead(gen, None, None, False, message, fix))
            return
        self._post(ClusterRead(gen, state, statuses, running))

    def _post(self, message: Message) -> None:
        try:
            self.post_message(message)
        except RuntimeError:
            pass

    @on(ClusterRead)
    def _cluster_read(self, event: ClusterRead) -> None:
        if event.gen != self._gen:
            return
        self._cluster_running = event.running
        if event.error:
            self._show_error(event.error, event.fix)
            self._status(event.error, error=True)
            self._update_apply()
            return
        if event.state is not None and event.state.status != Status.FAILED:
            self._show_error("", "")
        elif event.state is not None:
            self._show_error(event.state.summary, event.state.fix)
        self._show_cluster(event.statuses, event.state)
        if event.state is not None:
            self.set_state(event.state)
            self._status(event.state.summary if event.running else
                         "The cluster is not RUNNING yet: finish step 2 first.", error=not event.running)
        self._update_apply()

    def _show_cluster(self, statuses: list[Any] | None, state: Any) -> None:
        self._in_cluster = {st.name for st in statuses or () if st.present and not st.problem}
        self._show_preview()
        box = self.query_one("#sc-cluster", Static)
        box.border_title = f"In the cluster · namespace {self.cfg.namespace}"
        done = state is not None and state.status == Status.DONE
        box.set_class(done, "-done")
        if statuses is None:
            box.update(Content.styled("No running cluster to read yet (step 2).", "$text-muted"))
            return
        by_name = {s.name: s for s in statuses}
        lines = []
        for name, stype, key in SECRET_ROWS:
            s = by_name.get(name)
            if s is None or not s.present:
                lines.append(Content.assemble(("○ ", "$text-muted"), (name, "bold"), ("  missing", "$text-muted")))
            elif s.problem:
                lines.append(Content.assemble(("✘ ", "bold $error"), (name, "bold"), f"  present but {s.problem}"))
            else:
                lines.append(Content.assemble(("✔ ", "bold $success"), (name, "bold"),
                                              f"  present ({s.type}, key {key})"))
        box.update(Content("\n").join(lines))

    # applying ---------------------------------------------------------------------------------
    def action_apply(self) -> None:
        button = self.query_one("#sc-apply", Button)
        if button.disabled:
            inp = self.secrets_input()
            if not inp.specs:
                self.notify("Enter at least one secret (file or form) first.", severity="warning", timeout=4,
                            markup=False)
            elif not self._cluster_running:
                self.notify("The cluster is not RUNNING yet: finish step 2 first.", severity="warning", timeout=4,
                            markup=False)
            return
        ctx = self.ctx
        if ctx is None:
            return
        if not self.lease_first("creating the secrets", self.action_apply):
            return
        self._applying = True
        self._update_apply()
        self._show_error("", "")
        self._status("Applying…")
        self.set_state(StepState(Status.IN_PROGRESS, "Creating the namespace and the secrets…"))
        # a snapshot of what is entered now (later edits do not change this apply)
        inp = self.secrets_input()
        snapshot = SecretsInput(pull=inp.pull, hf=inp.hf)
        self._apply_worker(ctx, snapshot)

    @on(Button.Pressed, "#sc-apply")
    def _apply_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_apply()

    @work(thread=True, exclusive=True, group="secrets-apply", exit_on_error=False)
    def _apply_worker(self, ctx: Any, inp: SecretsInput) -> None:
        from ..steps import secrets as step

        try:
            result = step.apply_secrets(ctx, inp, lambda text: self._post(ApplyProgress(text)))
            statuses = step.secret_statuses(ctx)
            state = step.probe(ctx)
        except Exception as e:  # noqa: BLE001
            message, fix = _safe_error(e, ctx, inp)
            self._post(ApplyDone(None, message, fix))
            return
        self._post(ApplyDone((result, statuses, state)))

    @on(ApplyProgress)
    def _apply_progress(self, event: ApplyProgress) -> None:
        self._status(event.text)

    @on(ApplyDone)
    def _apply_done(self, event: ApplyDone) -> None:
        self._applying = False
        if event.result is None:
            self._show_error(event.error, event.fix)
            self._status(f"Not applied: {event.error}", error=True)
            self.set_state(StepState(Status.FAILED, event.error, fix=event.fix))
            self._update_apply()
            return
        result, statuses, state = event.result
        self._show_cluster(statuses, state)
        self.set_state(state)
        replaced = f" (replaced: {', '.join(result.replaced)})" if result.replaced else ""
        self._status(f"Applied {', '.join(result.applied)}{replaced}. " + state.summary)
        for form in self.query(SecretForm):
            if form.mode == "form":
                form.clear_values(f"{form.secret_name} created in the cluster; the typed values were cleared. "
                                  "Type new ones to replace it.")
        self.notify(f"Applied {', '.join(result.applied)} in namespace {self.cfg.namespace}.", title="Secrets",
                    timeout=4, markup=False)
        self._update_apply()

    # display helpers --------------------------------------------------------------------------
    def _status(self, text: str, error: bool = False) -> None:
        label = self.query_one("#sc-status", Label)
        label.update(text)
        label.set_class(error, "-error")

    def _show_error(self, message: str, fix: str) -> None:
        box = self.query_one("#sc-error", Static)
        if not message:
            box.remove_class("-shown")
            return
        parts: list[Any] = [("✘ ", "bold $error"), (message, "bold")]
        if fix:
            parts += ["\n", ("Fix: ", "bold $warning"), fix]
        box.update(Content.assemble(*parts))
        box.add_class("-shown")


def _safe_error(e: BaseException, ctx: Any, inp: SecretsInput | None = None) -> tuple[str, str]:
    """(message, fix) for the page: CloudError's own words, anything else by class name only; every
    secret value form scrubbed out either way."""
    hidden: list[str] = []
    for source in (inp, getattr(ctx, "secrets", None)):
        if source is not None:
            hidden += source.values()
    message = getattr(e, "message", None)
    if message:
        fix = str(getattr(e, "fix", "") or "")
    else:
        message = f"Unexpected error ({e.__class__.__name__})."
        fix = "Press r to read the cluster again; if it persists, report it with the log file."

    def scrub(text: str) -> str:
        for s in hidden:
            if s and len(s) >= 4:
                text = text.replace(s, "***")
        return text

    return scrub(str(message)), scrub(fix)
