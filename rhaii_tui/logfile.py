"""The log file: what went wrong in a thread (a watch, a worker, a follower) when the wizard's
screen hides stderr, written where the user can find it and attach it to a report.

    setup_logging()        once, at the start of the CLI: rotated file in the state directory
    log_path()             where it is (shown in --help and in "please report it" messages)
    SecretMaskFilter       masks access tokens, Hugging Face tokens, bearer headers and
                           docker-config auth in every record before it is written

Nothing secret is ever written: the filter runs on the handler, after the message and any
traceback are formatted.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import threading
from pathlib import Path

LOG_FILE_NAME = "rhaii-tui.log"
MAX_BYTES = 1_000_000
BACKUPS = 3
MASK = "[REDACTED]"

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # Authorization headers (any scheme), before the bare tokens they may contain
    (re.compile(r"(?i)(\bauthorization\b[\"']?\s*[:=]\s*[\"']?)(?:(?:bearer|basic)\s+)?[^\"'\s,}]+"), rf"\1{MASK}"),
    (re.compile(r"(?i)\b(bearer)(\s+)[A-Za-z0-9\-._~+/=]{8,}"), rf"\1\2{MASK}"),
    (re.compile(r"\bya29\.[A-Za-z0-9\-._~+/]+"), MASK),                 # Google OAuth access tokens
    (re.compile(r"\b1//[A-Za-z0-9\-._~+/]{20,}"), MASK),                # Google refresh tokens
    (re.compile(r"\bhf_[A-Za-z0-9]{8,}"), MASK),                        # Hugging Face tokens
    (re.compile(r"\bsim-[A-Za-z0-9\-_]{20,}"), MASK),                   # the simulated cloud's token
    (re.compile(r"(?i)([\"']?(?:auth|password|token|access_token|refresh_token|client_secret)[\"']?\s*[:=]\s*[\"'])"
                r"[^\"']+([\"'])"), rf"\1{MASK}\2"),                    # "auth": "dXNlcjpwYXNz" and friends
    (re.compile(r"(?i)((?:access_token|refresh_token|token)=)[^&\s\"']+"), rf"\1{MASK}"),
    (re.compile(r"\beyJ[A-Za-z0-9+/=_\-]{16,}"), MASK),                 # base64 JSON: dockerconfigjson, JWTs
]


def mask_secrets(text: str) -> str:
    """`text` with every token-like value replaced by [REDACTED]."""
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


class SecretMaskFilter(logging.Filter):
    """Masks secrets in the record's message and traceback (the record is rewritten in place, so
    every handler after this one sees the masked text too)."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not lose the record
            message = str(record.msg)
        record.msg, record.args = mask_secrets(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_secrets(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_secrets(record.stack_info)
        return True


class _PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """Files readable by their owner only (0600), the rotated ones too."""

    def _open(self):  # noqa: ANN202 - logging's signature
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)


def log_path(directory: str | Path | None = None) -> Path:
    """Where the log file is (the state directory unless told)."""
    if directory is None:
        from .config import state_dir

        directory = state_dir()
    return Path(directory) / LOG_FILE_NAME


_installed: logging.Handler | None = None
_lock = threading.Lock()


def setup_logging(directory: str | Path | None = None, level: int | None = None) -> Path | None:
    """Send the wizard's log records (and uncaught exceptions of threads) to the rotated log file.
    Idempotent; a later call with another directory moves the file there. Returns the path, or
    None when the directory cannot be written (the wizard runs on without a log file)."""
    global _installed
    path = log_path(directory)
    with _lock:
        if _installed is not None and getattr(_installed, "baseFilename", None) == str(path.absolute()):
            return path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handler = _PrivateRotatingFileHandler(path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8",
                                                  delay=True)
            handler._open().close()  # fail here, not at the first record, when it cannot be written
        except OSError:
            return None
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(threadName)s] %(name)s: %(message)s"))
        handler.addFilter(SecretMaskFilter())
        handler.setLevel(logging.DEBUG if os.environ.get("RHAII_TUI_DEBUG") else logging.INFO)
        root = logging.getLogger()
        if _installed is not None:
            root.removeHandler(_installed)
            _installed.close()
        root.addHandler(handler)
        _installed = handler
        ours = logging.getLogger("rhaii_tui")
        if ours.level == logging.NOTSET or ours.level > handler.level:
            ours.setLevel(level if level is not None else handler.level)
        _hook_thread_exceptions()
    return path


def _hook_thread_exceptions() -> None:
    """Uncaught exceptions in threads go to the log file too (stderr is hidden under the wizard)."""
    if getattr(threading.excepthook, "_rhaii_tui", False):
        return
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is not SystemExit:
            logging.getLogger("rhaii_tui.threads").error(
                "uncaught exception in thread %s", getattr(args.thread, "name", "?"),
                exc_info=(args.exc_type, args.exc_value, args.exc_traceback))
        previous(args)

    hook._rhaii_tui = True  # type: ignore[attr-defined]
    threading.excepthook = hook


def report_hint() -> str:
    """'the log file (PATH)' for messages that ask the user to report a problem."""
    try:
        return f"the log file ({log_path()})"
    except Exception:  # noqa: BLE001 - a message helper never fails
        return "the log file"


__all__ = ["setup_logging", "log_path", "report_hint", "mask_secrets", "SecretMaskFilter", "LOG_FILE_NAME"]
