"""Configure: the target and the service, validated as you type, with each value's source.

Every field is checked with `config.VALIDATORS` on each keystroke and the rule is shown under it.
Replicas shows the TPU chips it needs and the cost per day, live. Each value says where it came
from (flag, env, --config file, saved state, gcloud config, default, set here). Saving (ctrl+s)
makes it the app's config and writes the state file for the target (config only, never secrets).
Express (E, or its button) runs every step as soon as what it needs holds, after one confirmation of
what costs money (screens/express.py); it runs the saved configuration.
"""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.validation import ValidationResult, Validator
from textual.widgets import Button, Input, Label, Select, Static

from ..config import (
    CHIPS_PER_REPLICA,
    CLUSTER_OVERHEAD_PER_DAY,
    DEFAULTS,
    ENV_NAMES,
    TPU_MACHINE_TYPE,
    V6E_ZONES,
    VALIDATORS,
    DeployConfig,
    cost_per_day,
    region_of,
)
from . import register_step_screen
from .base import StepScreen
from .pages import CONFIGURE

# name, label, placeholder
FIELDS: tuple[tuple[str, str, str], ...] = (
    ("project", "GCP project", "my-project-id"),
    ("zone", "Zone", ""),
    ("cluster", "Cluster", "rhaii-tpu-scaleout-cluster"),
    ("namespace", "Namespace", "rhaii-inference"),
    ("service", "Service", "qwen-3b-tpu-svc"),
    ("model", "Model", "hf://ORG/NAME"),
    ("replicas", "Replicas", "3"),
    ("image", "Image", "registry/path:tag"),
    ("price_per_node_hour", "$/node-hour", f"{DEFAULTS['price_per_node_hour']} (optional)"),
)
FIELD_NAMES = tuple(name for name, _label, _ph in FIELDS)
FLAG_NAMES = {"project": "--project", "zone": "--zone", "cluster": "--cluster",
              "namespace": "--namespace", "replicas": "--replicas"}


def source_text(name: str, source: str | None) -> str:
    """Where a value came from, in a few words."""
    if source == "flag":
        return f"flag {FLAG_NAMES.get(name, '')}".strip()
    if source == "env":
        return f"env {ENV_NAMES.get(name, '')}".strip()
    return {
        "file": "--config file",
        "state": "saved state",
        "gcloud": "gcloud config",
        "default": "default",
        "user": "set here",
        "sim": "simulated world",
    }.get(source or "", source or "default")


def value_text(name: str, value: Any) -> str:
    if name == "price_per_node_hour":
        return f"{float(value):g}" if value not in (None, "") else ""
    return str(value)


def convert(name: str, raw: str) -> Any:
    """A valid raw field value -> the config's type."""
    if name == "replicas":
        return int(raw)
    if name == "price_per_node_hour":
        return float(raw) if raw.strip() else DEFAULTS["price_per_node_hour"]
    return raw.strip()


def cost_line(replicas: int, price: float) -> Content:
    per_day = cost_per_day(replicas, price)
    return Content.assemble(
        (f"{replicas * CHIPS_PER_REPLICA} TPU v6e chips", "bold"),
        (f" ({CHIPS_PER_REPLICA} per replica)", "$text-muted"),
        " · ", (f"≈ ${per_day:,.2f}/day", "bold $warning"))


class RuleValidator(Validator):
    """Adapts a `config.VALIDATORS` rule (returns the message or None) to Textual's Validator."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def validate(self, value: str) -> ValidationResult:
        err = VALIDATORS[self.name](value.strip() if self.name != "replicas" else value)
        return self.failure(err) if err else self.success()


@register_step_screen(CONFIGURE)
class ConfigureScreen(StepScreen):
    """The configuration form."""

    DEFAULT_CSS = """
    ConfigureScreen {
        .step-state { display: none; }  /* the form's own status line says it, next to Save */
        #cfg-form { height: 1fr; padding: 0 1 0 0; }
        #cfg-summary { height: auto; margin: 0 0 1 0; }
        .cfg-row { height: 1; }
        .cfg-label { width: 13; color: $text; }
        .cfg-row Input, .cfg-row Select { width: 1fr; }
        .cfg-source { width: 17; padding: 0 0 0 1; color: $text-muted; text-wrap: nowrap; text-overflow: ellipsis; }
        .cfg-source.-edited { color: $accent; text-style: italic; }
        .cfg-msg { height: auto; padding: 0 0 0 13; color: $text-muted; display: none; }
        .cfg-msg.-shown { display: block; }
        .cfg-msg.-error { color: $error; }
        #cfg-actions { height: 1; margin: 1 0 0 0; }
        #cfg-save { margin: 0 2 0 0; }
        #cfg-express { margin: 0 2 0 0; }
        #cfg-status { width: 1fr; color: $text-muted; }
        #cfg-status.-error { color: $error; }
        #cfg-status.-dirty { color: $warning; }
        .step-commands CommandList { max-height: 4; }
    }
    """

    BINDINGS = [
        Binding("ctrl+s", "save", "Save", tooltip="Save this configuration for the target"),
        Binding("E", "express", "Express", key_display="E",
                tooltip="Deploy everything, several steps at once, with a live timeline"),
    ]

    def __init__(self, number: int = CONFIGURE, **kwargs: Any) -> None:
        super().__init__(number, **kwargs)
        self._errors: dict[str, str] = {}
        self._refresh_pending = False

    # composition -----------------------------------------------------------------------------
    def compose_body(self) -> ComposeResult:
        cfg = self.cfg
        with VerticalScroll(id="cfg-form"):
            yield Static(id="cfg-summary")
            for name, label, placeholder in FIELDS:
                with Horizontal(classes="cfg-row", id=f"row-{name}"):
                    yield Label(label, classes="cfg-label")
                    yield self._make_control(name, cfg, placeholder)
                    yield Label(source_text(name, cfg.sources.get(name)), id=f"src-{name}",
                                classes="cfg-source", markup=False)
                yield Static(id=f"msg-{name}", classes="cfg-msg")
            with Horizontal(id="cfg-actions"):
                yield Button("Save", id="cfg-save", compact=True, variant="primary",
                             tooltip="Save (ctrl+s): config only, never secrets")
                yield Button("Express", id="cfg-express", compact=True, variant="warning",
                             tooltip="Express (E): every step as soon as what it needs holds, several at once")
                yield Label("", id="cfg-status")

    def _make_control(self, name: str, cfg: DeployConfig, placeholder: str) -> Input | Select:
        value = value_text(name, getattr(cfg, name))
        if name == "zone":
            return Select([(z, z) for z in V6E_ZONES], value=value if value in V6E_ZONES else Select.NULL,
                          prompt="choose a zone with TPU v6e", id="cfg-zone", compact=True)
        kind = {"replicas": "integer", "price_per_node_hour": "number"}.get(name, "text")
        return Input(value, placeholder=placeholder, id=f"cfg-{name}", type=kind, compact=True,
                     validators=[RuleValidator(name)], validate_on=["changed", "submitted"],
                     valid_empty=(name == "price_per_node_hour"))

    def on_mount(self) -> None:
        for name in FIELD_NAMES:
            if name != "zone":
                control = self.query_one(f"#cfg-{name}", Input)
                control.validate(control.value)
        self._refresh_all()

    # reading the form --------------------------------------------------------------------------
    def raw(self, name: str) -> str:
        if name == "zone":
            value = self.query_one("#cfg-zone", Select).value
            if value is Select.NULL:
                # not a known v6e zone: keep what the config holds so the rule explains it
                return "" if self.cfg.zone in V6E_ZONES else self.cfg.zone
            return str(value)
        return self.query_one(f"#cfg-{name}", Input).value

    def field_error(self, name: str) -> str | None:
        raw = self.raw(name)
        return VALIDATORS[name](raw if name == "replicas" else raw.strip())

    def edited(self) -> set[str]:
        """Fields whose value differs from the app's config."""
        cfg = self.cfg
        out = set()
        for name in FIELD_NAMES:
            raw = self.raw(name).strip()
            current = value_text(name, getattr(cfg, name))
            if name == "price_per_node_hour" and raw == "" :
                raw = value_text(name, DEFAULTS[name])
            if raw != current:
                out.add(name)
        return out

    def draft(self) -> DeployConfig:
        """The app's config with every valid edit applied (edited fields marked 'user')."""
        cfg = self.cfg
        changes = {name: convert(name, self.raw(name)) for name in self.edited()
                   if name not in self._errors}
        return cfg.replace(**changes) if changes else cfg

    # live feedback ----------------------------------------------------------------------------
    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        if event.input.id and event.input.id.startswith("cfg-"):
            self._schedule_refresh()

    @on(Select.Changed, "#cfg-zone")
    def _zone_changed(self, event: Select.Changed) -> None:
        self._schedule_refresh()

    def _schedule_refresh(self) -> None:
        """Coalesce a burst of changes (mount, paste) into one refresh on the next turn."""
        if not self._refresh_pending:
            self._refresh_pending = True
            self.call_later(self._refresh_all)

    def _refresh_all(self) -> None:
        self._refresh_pending = False
        self._errors = {name: err for name in FIELD_NAMES if (err := self.field_error(name))}
        edited = self.edited()
        draft = self.draft()
        for name in FIELD_NAMES:
            self._show_message(name, self._errors.get(name), draft)
            src = self.query_one(f"#src-{name}", Label)
            src.update("edited" if name in edited else source_text(name, self.cfg.sources.get(name)))
            src.set_class(name in edited, "-edited")
        self._show_summary(draft)
        self._show_status(edited)
        self.refresh_commands(draft)

    def _show_message(self, name: str, error: str | None, draft: DeployConfig) -> None:
        msg = self.query_one(f"#msg-{name}", Static)
        content: Content | None = None
        if error:
            content = Content.assemble("✘ ", error)
        elif name == "replicas":
            content = cost_line(draft.replicas, draft.price_per_node_hour)
        elif name == "price_per_node_hour":
            content = Content.styled(
                f"{draft.replicas} nodes × 24 h × ${draft.price_per_node_hour:g} "
                f"+ ${CLUSTER_OVERHEAD_PER_DAY:.2f} cluster = ${draft.cost_per_day():,.2f}/day", "$text-muted")
        msg.update(content or "")
        msg.set_class(content is not None, "-shown")
        msg.set_class(bool(error), "-error")

    def _show_summary(self, draft: DeployConfig) -> None:
        self.query_one("#cfg-summary", Static).update(Content.assemble(
            ("Quota needed: ", "bold"), (f"{draft.chips_needed} TPU v6e chips", "bold"), f" in {region_of(draft.zone)}\n",
            ("Cost: ", "bold"), (f"≈ ${draft.cost_per_day():,.2f}/day", "bold $warning"), " serving, ",
            f"${cost_per_day(0, draft.price_per_node_hour):,.2f}/day at zero"))

    def _show_status(self, edited: set[str]) -> None:
        status = self.query_one("#cfg-status", Label)
        n = len(self._errors)
        if n:
            text = f"{n} field{'s' if n != 1 else ''} need{'s' if n == 1 else ''} attention"
        elif edited:
            text = "Unsaved changes: ctrl+s to save"
        else:
            text = "Saved" if self.cfg.sources and "user" in self.cfg.sources.values() else ""
        status.update(text)
        status.set_class(bool(n), "-error")
        status.set_class(not n and bool(edited), "-dirty")

    # saving ------------------------------------------------------------------------------------
    def action_save(self) -> None:
        self._refresh_all()
        if self._errors:
            first = next(name for name in FIELD_NAMES if name in self._errors)
            self.notify(f"{len(self._errors)} field(s) need attention: {self._errors[first]}",
                        title="Not saved", severity="error", markup=False)
            self.query_one(f"#cfg-{first}").focus()
            return
        self.wizard.save_config(self.draft())

    def action_express(self) -> None:
        """Deploy everything with the saved configuration (screens/express.py)."""
        self._refresh_all()
        if self._errors:
            first = next(name for name in FIELD_NAMES if name in self._errors)
            self.notify(f"Fix the configuration first: {self._errors[first]}", title="Express",
                        severity="error", markup=False)
            return
        if self.edited():
            self.notify("Save the changes first (ctrl+s): Express runs the saved configuration.",
                        title="Express", severity="warning", markup=False)
            return
        from .express import start_express

        start_express(self.app)

    @on(Button.Pressed, "#cfg-express")
    def _express_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_express()

    @on(Button.Pressed, "#cfg-save")
    def _save_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_save()

    def config_changed(self, cfg: DeployConfig) -> None:
        """The app's config changed (saved here or elsewhere): show its values and sources."""
        for name in FIELD_NAMES:
            value = value_text(name, getattr(cfg, name))
            if name == "zone":
                select = self.query_one("#cfg-zone", Select)
                new = value if value in V6E_ZONES else Select.NULL
                if select.value != new:
                    select.value = new
            else:
                control = self.query_one(f"#cfg-{name}", Input)
                if control.value != value:
                    control.value = value
        self._refresh_all()

    def commands(self, cfg: DeployConfig) -> list[str]:
        return list(self.page.commands(cfg))
