"""A network blip while refreshing the access token is not "credentials expired or revoked": it is
retried, and if it lasts the user reads "cannot reach Google" (no Re-authenticate dialog)."""

from __future__ import annotations

import google.auth
import google.auth.exceptions as gae
import pytest

from rhaii_tui.cloud.gke import CloudError, map_error
from rhaii_tui.cloud.profile import CredentialsError, GcpProfile


class FlakyAdc:
    """ADC credentials whose refresh fails with the given errors first, then works."""

    def __init__(self, errors: list[BaseException]):
        self.errors, self.token, self.valid, self.calls = list(errors), None, False, 0

    def refresh(self, request) -> None:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        self.token, self.valid = "ya29.fresh", True


def profile_with(monkeypatch, adc: FlakyAdc) -> tuple[GcpProfile, list[str]]:
    monkeypatch.setattr(google.auth, "default", lambda scopes=None: (adc, "some-project"))
    profile = GcpProfile()
    profile.token_retry_delay = 0.01
    heard: list[str] = []
    profile.add_credentials_listener(heard.append)
    return profile, heard


def test_a_short_network_blip_is_retried_quietly(monkeypatch):
    adc = FlakyAdc([gae.TransportError("Connection reset by peer"),
                    gae.RefreshError("temporarily unavailable", retryable=True)])
    profile, heard = profile_with(monkeypatch, adc)
    try:
        assert profile.access_token() == "ya29.fresh"
        assert adc.calls == 3 and heard == []
    finally:
        profile.remove_credentials_listener(heard.append)


def test_a_lasting_network_failure_says_cannot_reach_google_not_expired(monkeypatch):
    adc = FlakyAdc([gae.TransportError("Max retries exceeded: Name or service not known")] * 10)
    profile, heard = profile_with(monkeypatch, adc)
    try:
        with pytest.raises(CloudError) as ei:
            profile.access_token()
        assert ei.value.kind == "unavailable"
        assert "Cannot reach Google" in ei.value.message and "network" in ei.value.fix
        assert "expired" not in str(ei.value) and "login" not in ei.value.message
        assert heard == []  # no Re-authenticate dialog for a network problem
        assert adc.calls == profile.token_refresh_attempts
    finally:
        profile.remove_credentials_listener(heard.append)


def test_a_revoked_login_is_still_a_credentials_failure(monkeypatch):
    adc = FlakyAdc([gae.RefreshError("invalid_grant: Token has been expired or revoked.")])
    profile, heard = profile_with(monkeypatch, adc)
    try:
        with pytest.raises(CredentialsError):
            profile.access_token()
        assert len(heard) == 1 and adc.calls == 1
    finally:
        profile.remove_credentials_listener(heard.append)


def test_client_library_transport_errors_map_to_unavailable(monkeypatch):
    import rhaii_tui.cloud.gke as gke

    reported: list[str] = []
    monkeypatch.setattr(gke, "report_credentials_failure", reported.append)
    err = map_error(gae.TransportError("HTTPSConnectionPool(host='oauth2.googleapis.com'): Read timed out"))
    assert err.kind == "unavailable" and "Cannot reach Google" in err.message and reported == []
    err = map_error(gae.RefreshError("invalid_grant"))
    assert err.kind == "credentials" and len(reported) == 1
