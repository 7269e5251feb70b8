"""The log file: in the state directory, rotated, owner-only, and never a secret in it."""

from __future__ import annotations

import logging
import stat
import threading

import pytest

from rhaii_tui import logfile

HF = "hf_" + "Zq9CanaryHfTok" * 3
YA29 = "ya29.a0AfH6SMCanaryAccessToken-xyz_123"
SIM = "sim-" + "CanarySimToken0123456789abc"
AUTH_B64 = "c29tZW9uZTpDYW5hcnktUmVnaXN0cnktUGE1NXdvcmQ="  # someone:Canary-Registry-Pa55word
DOCKERCONFIG_B64 = "eyJhdXRocyI6eyJyZWdpc3RyeS5yZWRoYXQuaW8iOnsiYXV0aCI6ImMyOXRaVzl1WlRwd1lYTnoifX19"
SECRETS = (HF, YA29, SIM, AUTH_B64, DOCKERCONFIG_B64, "Canary-Registry-Pa55word", "CanaryBearer0123456789")


@pytest.mark.parametrize("text", [
    f"GET /v1/projects with Authorization: Bearer {YA29}",
    f"headers={{'Authorization': 'Bearer CanaryBearer0123456789'}}",
    f"refresh gave token {YA29} for the wizard",
    f"HF_TOKEN={HF} rejected",
    f"the simulated token is {SIM}",
    f'{{"auths": {{"registry.redhat.io": {{"auth": "{AUTH_B64}"}}}}}}',
    f'secret data .dockerconfigjson: {DOCKERCONFIG_B64}',
    '{"username": "someone", "password": "Canary-Registry-Pa55word"}',
])
def test_secrets_are_masked(text):
    masked = logfile.mask_secrets(text)
    assert not any(s in masked for s in SECRETS), masked
    assert logfile.MASK in masked


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_the_log_file_gets_thread_errors_without_secrets(tmp_path, monkeypatch):
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)  # restored after the test
    path = logfile.setup_logging(tmp_path)
    try:
        assert path == tmp_path / logfile.LOG_FILE_NAME
        assert logfile.setup_logging(tmp_path) == path  # idempotent: one handler
        logging.getLogger("rhaii_tui.test").warning("refresh with Bearer %s failed", YA29)

        def boom() -> None:
            raise RuntimeError(f"the cluster refused {HF} and {SIM}")

        t = threading.Thread(target=boom, name="watch-thread")
        t.start()
        t.join()
        for h in logging.getLogger().handlers:
            h.flush()
        text = path.read_text()
        assert "refresh with Bearer" in text and "uncaught exception in thread watch-thread" in text
        assert "RuntimeError: the cluster refused" in text and "Traceback" in text
        assert not any(s in text for s in SECRETS), text
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert sum(isinstance(h, logging.handlers.RotatingFileHandler) and h.baseFilename == str(path)
                   for h in logging.getLogger().handlers) == 1
    finally:
        _remove_handler()


def _remove_handler() -> None:
    h = logfile._installed
    if h is not None:
        logging.getLogger().removeHandler(h)
        h.close()
        logfile._installed = None


def test_help_and_the_unexpected_error_message_say_where_the_log_file_is(tmp_path, monkeypatch, capsys):
    from rhaii_tui import cli

    monkeypatch.setenv("RHAII_TUI_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("RHAII_TUI_DEBUG", raising=False)
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    where = str(tmp_path / logfile.LOG_FILE_NAME)
    assert where in "".join(cli.build_parser().format_help().split())  # wrapped lines joined

    def broken(args, cfg):
        raise RuntimeError("something nobody expected")

    monkeypatch.setattr(cli, "_launch_wizard", broken)
    try:
        code = cli.main([])
        err = capsys.readouterr().err
        assert code != 0 and "unexpected error" in err and where in err and "Traceback" not in err
        for h in logging.getLogger().handlers:
            h.flush()
        assert "RuntimeError: something nobody expected" in (tmp_path / logfile.LOG_FILE_NAME).read_text()
    finally:
        _remove_handler()
