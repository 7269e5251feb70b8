"""What every step reports: a Status and a StepState (summary, detail, fix, data for the panes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Status(str, Enum):
    NOT_STARTED = "not_started"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"
    UNKNOWN = "unknown"  # could not be read (Google unreachable, credentials refused): not a failure

    def __str__(self) -> str:
        return self.value


@dataclass
class StepState:
    status: Status
    summary: str
    detail: str = ""
    fix: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.status in (Status.DONE, Status.SKIPPED)

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status.value, "summary": self.summary, "detail": self.detail, "fix": self.fix}


def from_error(err: Any, summary: str | None = None) -> StepState:
    """A StepState for a CloudError (or anything with message/fix)."""
    message = getattr(err, "message", None) or str(err)
    return StepState(Status.FAILED, summary or message, detail=message if summary else "",
                     fix=getattr(err, "fix", "") or "", data={"error_kind": getattr(err, "kind", "unknown")})
