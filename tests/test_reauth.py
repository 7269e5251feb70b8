"""Expired or revoked credentials mid-run: a clear message, re-authenticate, carry on (issue 8).

The emulator revokes its token through the control API (as `gcloud auth revoke` or an expired
session would); `rhaii-tui sim login` is the simulated `gcloud auth application-default login`
(a fresh token written to the world's endpoints.json; the revoked one stays revoked).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time

import httpx
import pytest
from textual.widgets import Button, Label, Static

from rhaii_tui import cli
from rhaii_tui.app import RhaiiApp
from rhaii_tui.cloud.gke import CloudError, Gke
from rhaii_tui.cloud.kube import CREDENTIALS_STATE, KubeSession, ListWatcher
from rhaii_tui.cloud.profile import CredentialsError, GcpProfile, SimProfile
from rhaii_tui.config import DeployConfig, StateStore
from rhaii_tui.screens.operators import OperatorsScreen
from rhaii_tui.screens.reauth import ReauthScreen

from pilothelpers import until

PROJECT = "rhaii-demo-project"
ZONE = "europe-west4-a"
CLUSTER = "rhaii-tpu-scaleout-cluster"
SIZE = (120, 40)


def control(world, path: str, token: str | None = None) -> httpx.Response:
    """The emulator's control API, as a test harness (or `rhaii-tui sim revoke-token`) uses it."""
    tok = token if token is not None else world.endpoints["token"]
    return httpx.post(f"{world.google_url}/_emu/{path}", headers={"Authorization": f"Bearer {tok}"}, timeout=10)


def sim_cli(world, *args: str) -> int:
    return cli.main(["--sim-state", str(world.state_dir), "sim", *args])


def wait_for(pred, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


class Heard:
    """A credentials listener on a profile (what the app registers), for the test to read."""

    def __init__(self, profile):
        self.profile = profile
        self.messages: list[str] = []
        self.lock = threading.Lock()
        profile.add_credentials_listener(self)

    def __call__(self, message: str) -> None:
        with self.lock:
            self.messages.append(message)

    def count(self) -> int:
        with self.lock:
            return len(self.messages)

    def close(self) -> None:
        self.profile.remove_credentials_listener(self)


@pytest.fixture
def cluster(make_sim_world):
    world = make_sim_world("cluster-ready")
    profile = world.profile()
    info = Gke(profile, PROJECT, ZONE).get_cluster(CLUSTER)
    session = KubeSession(profile, info.access)
    yield world, profile, session
    session.close()


# --- the emulator: a revoked token is refused by Google and Kubernetes APIs; login issues a new one ----


def test_revoked_token_is_refused_by_both_apis_until_a_new_login(cluster):
    world, profile, session = cluster
    heard = Heard(profile)
    try:
        old = world.endpoints["token"]
        assert control(world, "revoke-token").status_code == 200

        with pytest.raises(CloudError) as ei:  # the cluster's Kubernetes API answers 401 too
            session.list("v1", "Namespace")
        assert ei.value.kind == "credentials"
        with pytest.raises(CloudError) as ei:
            Gke(profile, PROJECT, ZONE).get_cluster(CLUSTER)
        assert ei.value.kind == "credentials"
        assert heard.count() >= 2  # both failures reached the profile's listener
        assert all(old not in m for m in heard.messages)

        assert control(world, "login").status_code == 200
        new = world.endpoints["token"]
        assert new and new != old
        # the old (revoked) token stays refused everywhere; the new one works without rebuilding anything
        assert httpx.get(f"{world.google_url}/v3/projects/{PROJECT}",
                         headers={"Authorization": f"Bearer {old}"}).status_code == 401
        assert [n["metadata"]["name"] for n in session.list("v1", "Namespace")]
        assert Gke(profile, PROJECT, ZONE).get_cluster(CLUSTER) is not None
        # kubeconfigs and the gcloud config dir carry the new token (real kubectl/gcloud keep working)
        kubeconfig = world.endpoints["clusters"][f"{PROJECT}/{ZONE}/{CLUSTER}"]["kubeconfig"]
        text = open(kubeconfig).read()
        assert new in text and old not in text
    finally:
        heard.close()


# --- SimProfile.reauthenticate ------------------------------------------------------------------


def test_reauthenticate_fails_with_the_hint_while_revoked_and_succeeds_after_login(sim_world):
    profile = sim_world.profile()
    profile.reauthenticate()  # a valid token: proven by one call, no error

    control(sim_world, "revoke-token")
    with pytest.raises(CredentialsError) as ei:
        profile.reauthenticate()
    msg = str(ei.value)
    assert "still refuses" in msg and "rhaii-tui sim login" in msg
    assert sim_world.token not in msg

    assert control(sim_world, "login").status_code == 200
    profile.reauthenticate()
    assert profile.projects().get_project(request={"name": f"projects/{PROJECT}"}).project_id == PROJECT


def test_reauthenticate_replaces_cached_google_clients(sim_world):
    profile = sim_world.profile()
    before = profile.gke()
    control(sim_world, "login")
    profile.reauthenticate()
    assert profile.gke() is not before  # clients are rebuilt with the fresh credentials
    assert Gke(profile, PROJECT, ZONE).list_clusters() is not None


def test_reauthenticate_when_the_emulator_is_gone_says_how_to_start_it(tmp_path):
    (tmp_path / "endpoints.json").write_text(json.dumps(
        {"google_api": "http://127.0.0.1:9", "token": "sim-x", "project": PROJECT}))
    with pytest.raises(CredentialsError) as ei:
        SimProfile(tmp_path / "endpoints.json").reauthenticate()
    assert "does not answer" in str(ei.value) and "rhaii-tui --sim" in str(ei.value)
    with pytest.raises(CredentialsError) as ei:
        SimProfile(tmp_path / "missing" / "endpoints.json").reauthenticate()
    assert "not running" in str(ei.value)


class FakeAdc:
    """What google.auth.default() hands out: refresh() fails while the login is revoked."""

    def __init__(self, ok: bool, token: str):
        self.ok, self.token_after, self.token, self.valid = ok, token, None, False

    def refresh(self, request) -> None:
        import google.auth.exceptions

        if not self.ok:
            raise google.auth.exceptions.RefreshError("invalid_grant: Token has been expired or revoked.")
        self.token, self.valid = self.token_after, True


def test_gcp_reauthenticate_loads_adc_afresh_and_proves_the_token(monkeypatch):
    import google.auth

    logins = {"ok": False, "calls": 0}

    def default(scopes=None):
        logins["calls"] += 1
        return FakeAdc(logins["ok"], f"ya29.fresh-{logins['calls']}"), "some-project"

    checked = []

    def tokeninfo(url, data=None, timeout=None):
        checked.append((url, data))
        return httpx.Response(200, json={"scope": "cloud-platform"})

    monkeypatch.setattr(google.auth, "default", default)
    monkeypatch.setattr(httpx, "post", tokeninfo)
    profile = GcpProfile()
    heard = Heard(profile)
    try:
        with pytest.raises(CredentialsError) as ei:  # the ADC login itself was revoked: refresh fails
            profile.reauthenticate()
        assert "application-default login" in str(ei.value)
        assert heard.count() == 1 and not checked

        logins["ok"] = True  # the user ran `gcloud auth application-default login`
        profile.reauthenticate()
        assert logins["calls"] == 2  # google.auth.default() was asked again, not the cached credentials
        assert checked and checked[-1][0].startswith("https://oauth2.googleapis.com/tokeninfo")
        assert profile.access_token() == "ya29.fresh-2"

        monkeypatch.setattr(httpx, "post", lambda *a, **k: httpx.Response(400, json={"error": "invalid_token"}))
        with pytest.raises(CredentialsError) as ei:
            profile.reauthenticate()
        assert "gcloud auth application-default login" in str(ei.value) and "ya29" not in str(ei.value)
    finally:
        heard.close()


def test_each_profile_says_how_to_sign_in_again():
    assert "gcloud auth application-default login" in GcpProfile.reauth_hint
    assert "Retry" in GcpProfile.reauth_hint
    assert "rhaii-tui sim login" in SimProfile.reauth_hint


# --- a watch in the credentials state reconnects as soon as the user re-authenticates ----------------


def test_a_watch_reconnects_at_once_after_reauthenticate(cluster):
    world, profile, session = cluster
    heard = Heard(profile)
    control(world, "revoke-token")
    # back-off far longer than the wait below: going live again means the renewal woke the watch
    w = ListWatcher(session.core.list_namespace, on_event=lambda ev: None, backoff_min=300, backoff_max=300,
                    name="namespaces").start()
    try:
        wait_for(lambda: w.state == CREDENTIALS_STATE, what="the credentials state")
        assert heard.count() >= 1
        assert sim_cli(world, "login") == 0
        profile.reauthenticate()
        wait_for(lambda: w.state == "live", what="the watch live again")
    finally:
        w.stop()
        heard.close()


# --- the CLI: rhaii-tui sim revoke-token / sim login ---------------------------------------------


def test_sim_revoke_token_and_login_commands(sim_world, capsys):
    old = sim_world.token
    assert sim_cli(sim_world, "revoke-token") == 0
    out = capsys.readouterr()
    assert "revoked" in out.out and "rhaii-tui sim login" in out.out
    assert sim_world.state()["token_revoked"] is True
    assert old not in out.out + out.err

    assert cli.main(["sim", "login", "--state-dir", str(sim_world.state_dir)]) == 0
    out = capsys.readouterr()
    assert "Signed in to the simulated cloud" in out.out and "press Retry" in out.out
    new = sim_world.endpoints["token"]
    assert new != old and sim_world.token == new
    assert new not in out.out + out.err  # the token is never printed
    assert sim_world.state()["token_revoked"] is False  # the new token is not revoked...
    assert httpx.get(f"{sim_world.google_url}/v3/projects/{PROJECT}",
                     headers={"Authorization": f"Bearer {old}"}).status_code == 401  # ...the old one stays refused


def test_sim_token_commands_without_a_running_world(tmp_path, capsys):
    for which in ("login", "revoke-token"):
        assert cli.main(["sim", which, "--state-dir", str(tmp_path / "none")]) == 1
        err = capsys.readouterr().err
        assert f"rhaii-tui sim {which}: no simulated cloud is running in" in err
        assert "rhaii-tui --sim" in err and "Traceback" not in err


# --- the wizard: the modal, Retry while revoked, sim login, Retry, the page goes live again ---------------


@pytest.fixture
def quick_polls(monkeypatch):
    monkeypatch.setattr(OperatorsScreen, "CRD_INTERVAL", 0.2)
    monkeypatch.setattr(OperatorsScreen, "RETRY_SECONDS", 0.3)




def watch_label(app) -> str:
    return str(app.page_widget(4).query_one("#op-watch", Label).render())


def modal(app) -> ReauthScreen | None:
    """The re-authenticate modal on top, once composed (its buttons exist)."""
    screen = app.screen
    return screen if isinstance(screen, ReauthScreen) and screen.query("#reauth-retry") else None


def modal_text(screen: ReauthScreen) -> str:
    parts = [str(screen.query_one(sel, Static).render()) for sel in ("#reauth-what", "#reauth-hint")]
    return "\n".join(parts + [screen.status_text])


async def press(pilot, app, button_id: str) -> None:
    """Press one of the modal's buttons (as a click would; no race with the layout settling)."""
    screen = await until(pilot, lambda: modal(app), what="the modal")
    button = screen.query_one(f"#{button_id}", Button)
    assert not button.disabled
    button.press()
    await pilot.pause()


def reauth_modals(app) -> int:
    return sum(isinstance(s, ReauthScreen) for s in app.screen_stack)


@contextlib.asynccontextmanager
async def wizard_on_step_4(world, tmp_path):
    app = RhaiiApp(DeployConfig(project=world.endpoints["project"], replicas=3), profile=world.profile(),
                   state_store=StateStore(tmp_path / "state"), start_step=4)
    async with app.run_test(size=SIZE) as pilot:
        await app.start_page_ready.wait()
        await until(pilot, lambda: "● live" in watch_label(app), what="step 4's watches live")
        yield app, pilot


@pytest.mark.asyncio
async def test_revoked_mid_run_modal_retry_login_retry_and_the_page_carries_on(make_sim_world, tmp_path,
                                                                              quick_polls):
    world = make_sim_world("cluster-ready")
    async with wizard_on_step_4(world, tmp_path) as (app, pilot):
        cfg_before = app.cfg
        world.sim().faults.watch_drop_seconds = 0.3  # watches re-connect often, so they meet the 401 too
        old_token = world.token
        assert control(world, "revoke-token").status_code == 200

        screen = await until(pilot, lambda: modal(app), what="the re-authenticate modal")
        text = modal_text(screen)
        assert "What happened:" in text and "rejected the credentials" in text
        assert "rhaii-tui sim login" in text and "Retry" in text
        page = app.page_widget(4)
        await until(pilot, lambda: watch_label(app).startswith("◌"), what="the page showing the watches' trouble")
        await until(pilot, lambda: CREDENTIALS_STATE in page.live.states.values(), timeout=8,
                    what=f"a watch in the credentials state {page.live.states}")

        # Retry while the token is still revoked: the modal stays, with a clear message
        await press(pilot, app, "reauth-retry")
        await until(pilot, lambda: "Still not signed in" in screen.status_text, what="the retry's failure")
        assert modal(app) is screen and reauth_modals(app) == 1  # still one modal, despite repeated failures
        assert "rhaii-tui sim login" in screen.status_text
        assert not screen.query_one("#reauth-retry", Button).disabled
        assert old_token not in modal_text(screen)  # never a secret on screen

        # sign in again in "another terminal", then Retry
        assert await asyncio.to_thread(sim_cli, world, "login") == 0
        assert world.token != old_token
        await press(pilot, app, "reauth-retry")
        await until(pilot, lambda: modal(app) is None, what="the modal dismissed")

        # the page carries on: its watches are live again, config untouched, no token on screen
        await until(pilot, lambda: watch_label(app).startswith("● live"), what="step 4's watches live again")
        assert app.current_step == 4 and app.cfg == cfg_before
        await pilot.pause(0.5)
        assert modal(app) is None  # no stale failure re-opens it


@pytest.mark.asyncio
async def test_later_keeps_quiet_while_failures_continue_and_ctrl_r_reopens(make_sim_world, tmp_path, quick_polls):
    world = make_sim_world("cluster-ready")
    async with wizard_on_step_4(world, tmp_path) as (app, pilot):
        heard = Heard(app.profile)
        try:
            control(world, "revoke-token")
            await until(pilot, lambda: modal(app), what="the re-authenticate modal")
            await press(pilot, app, "reauth-later")
            await until(pilot, lambda: modal(app) is None, what="the modal closed by Later")
            seen = heard.count()
            await until(pilot, lambda: heard.count() >= seen + 5, what="more credentials failures")
            assert reauth_modals(app) == 0  # Later is respected: no loop of modals

            await pilot.press("ctrl+r")
            screen = await until(pilot, lambda: modal(app), what="the modal from ctrl+r")
            control(world, "login")
            await press(pilot, app, "reauth-retry")
            await until(pilot, lambda: modal(app) is None, what="the modal dismissed after sign-in")
            assert screen.attempts == 1
            await until(pilot, lambda: watch_label(app).startswith("● live"), what="step 4 live again")
        finally:
            heard.close()
