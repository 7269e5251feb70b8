"""The wizard's pages as data: Configure (0), the guide's eleven steps (1-11), Operate (12).

One list for the sidebar, the command palette, the help screen and the generic step screen.
The eleven steps come straight from `guide.STEPS`; Configure and Operate are the wizard's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..config import GATEWAY_NAME, GATEWAY_NAMESPACE, TPU_POOL_NAME, DeployConfig
from ..guide import STEPS, Step

CONFIGURE = 0
OPERATE = len(STEPS) + 1  # 12


@dataclass(frozen=True)
class Page:
    number: int
    title: str
    purpose: str
    expected_text: str
    success: tuple[str, ...]
    commands: Callable[[DeployConfig], list[str]]
    optional: bool = False
    step: Step | None = None

    @property
    def is_step(self) -> bool:
        return self.step is not None

    @property
    def heading(self) -> str:
        """'Step 2 · GKE cluster and TPU node pool' or 'Configure'."""
        return f"Step {self.number} · {self.title}" if self.is_step else self.title

    @property
    def short(self) -> str:
        """The sidebar's title: short enough that the page keeps most of the width."""
        return SIDEBAR_TITLES.get(self.number, self.title)

    @property
    def tiny(self) -> str:
        """The sidebar's title where even the short one does not fit (a narrow terminal)."""
        return TINY_TITLES.get(self.number, self.short)

    @property
    def label(self) -> str:
        return (f"{self.number}. {self.title}" if self.is_step else self.title) + (
            " (optional)" if self.optional else "")


SIDEBAR_TITLES: dict[int, str] = {
    1: "Preflight checks", 2: "Cluster and TPU pool", 3: "Namespace and secrets", 4: "Operators",
    5: "Deploy the service", 6: "EPP sidecar", 7: "EnvoyFilters", 8: "NetworkPolicies", 9: "Verify",
    10: "Cache & throughput", 11: "Model identity",
}

TINY_TITLES: dict[int, str] = {2: "Cluster", 3: "Secrets", 5: "Deploy", 8: "NetPolicies", 10: "Cache & speed"}


def _configure_commands(c: DeployConfig) -> list[str]:
    return [
        f"export PROJECT_ID={c.project or '<project-id>'} ZONE={c.zone} "
        f"CLUSTER_NAME={c.cluster} NAMESPACE={c.namespace}",
        f"gcloud config set project {c.project or '<project-id>'}",
        f"gcloud config set compute/zone {c.zone}",
    ]


def _operate_commands(c: DeployConfig) -> list[str]:
    return [
        f"kubectl get llminferenceservice {c.service} -n {c.namespace}",
        f"kubectl get pods -n {c.namespace} -l kserve.io/component=workload -o wide",
        f"kubectl logs -n {c.namespace} -l kserve.io/component=workload -c main --tail=100",
        f"kubectl get gateway {GATEWAY_NAME} -n {GATEWAY_NAMESPACE}",
        f"gcloud container clusters resize {c.cluster} --node-pool {TPU_POOL_NAME} --num-nodes 0 "
        f"--project {c.project} --zone {c.zone}",
        f"gcloud container clusters delete {c.cluster} --project {c.project} --zone {c.zone}",
    ]


CONFIGURE_PAGE = Page(
    CONFIGURE, "Configure",
    "Choose the target and the service. Each value shows where it came from; nothing is created here. "
    "Saved per target (never secrets).",
    "~1 min",
    ("Every field valid", "Configuration saved for this target"),
    _configure_commands,
)

OPERATE_PAGE = Page(
    OPERATE, "Operate",
    "Day two: watch the service and its replicas, follow logs, scale the TPU pool (down to zero to stop "
    "paying for TPUs) and tear everything down when you are finished.",
    "as needed",
    ("Service Ready and every replica answering",),
    _operate_commands,
)

PAGES: tuple[Page, ...] = (
    CONFIGURE_PAGE,
    *(Page(s.number, s.title, s.purpose, s.expected_text, s.success, s.commands, s.optional, s) for s in STEPS),
    OPERATE_PAGE,
)
BY_NUMBER: dict[int, Page] = {p.number: p for p in PAGES}


def page(number: int) -> Page:
    return BY_NUMBER[number]
