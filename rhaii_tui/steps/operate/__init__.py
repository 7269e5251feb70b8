"""Operate (page 12): day-two operations on the deployed service. Pure logic, no Textual; the
Operate screen and `rhaii-tui ops ...` both call these functions.

- `read_status(ctx)` -> `OpsStatus`: replicas desired/ready, TPU nodes, node pool size, gateway
  address, image, cost per day now; `status.cost_after(action, n)` the cost once an action is done.
- `scale(ctx, n)`: the LLMInferenceService replicas and the TPU node pool together, in the safe
  order: grow the nodes before the replicas, shrink the replicas before the nodes. Growing checks the
  TPU quota first (4 chips per replica) and refuses before anything changes when it is too small.
  Follows until n replicas are Ready.
- `scale_to_zero(ctx)` / `resume(ctx)`: the guide's "Scale to Zero" (node pool to 0; the service
  stays, its pods wait Pending; cost drops to the cluster overhead; the size is remembered in the
  state file) and "Scale Back Up" (the remembered size, nodes then pods, then the quick verification).
- `update_image(ctx, tag)` / `rollback_image(ctx)`: a rolling image update, one replica at a time,
  each new one Ready before the next old one goes (see "Rolling updates" below); a new replica that
  fails (CrashLoopBackOff, ImagePullBackOff...) or is not Ready within a timeout rolls the service
  back to the previous image automatically, while the old replicas keep serving.
- `CHECKLIST` / `migration_status(ctx)` / `migrate(ctx)` / `rollback_migration(ctx)`: the scale-out
  guide's migration from a single-model deployment (one replica, no prefix caching), as data, each
  item probed live; and its rollback procedure.
- `plan_teardown(ctx, scope)` / `teardown(ctx, scope)`: delete the service (LLMInferenceService, its
  health route, the EnvoyFilters and NetworkPolicies), or the TPU node pool, or the whole cluster;
  the plan lists what is deleted and what keeps costing.

Every action reports `OpEvent`s to `on_event` (plain lines for a log) and returns an `OpResult`
(never raises for cloud failures: they become a failed result with a fix). A `stop` event ends the
follow early (what was sent to the cloud keeps going; running the action again picks it up).

Rolling updates. The LLMInferenceService schema (KServe 3.4) has no deployment strategy, and KServe
renders its workload Deployment without one, so the apiserver's default applies (RollingUpdate,
maxSurge 25%, maxUnavailable 25%: with 3 replicas one surge pod and no unavailable one), and KServe
puts that default back whenever it updates the Deployment. With one TPU node per replica the surge
pod has no node and the rollout never moves. So the wizard drives it, replica by replica, with
maxSurge 0 / maxUnavailable 1 semantics: when the new ReplicaSet's pod is Unschedulable and every
new pod that has a node is Ready, it scales the oldest old ReplicaSet down by one (freeing a node
for the new pod), never below one Ready replica overall. The Deployment controller does the rest
(it never scales old ReplicaSets up during a rollout). Old pods that are not Ready are removed at
once (that costs no availability): this is also how a failed new image is cleared on rollback.

One module per action, everything re-exported here (`from rhaii_tui.steps import operate`):
common.py (constants, object readers, Runner), status.py, scale.py, zero.py (scale to zero /
resume), schedule.py (the scheduled scale-to-zero), image.py, migrate.py, teardown.py, confirm.py
(describe), headless.py (ops ...).
"""

from __future__ import annotations

from .common import (  # noqa: F401
    LLMISVC_KIND,
    GATEWAY_API_VERSION,
    REVISION,
    MAIN,
    PREFIX_FLAG,
    READY_TIMEOUT,
    NODE_TIMEOUT,
    FAIL_GRACE,
    KSERVE_TIMEOUT,
    POD_GONE_TIMEOUT,
    MIN_WALL,
    K_ZERO,
    K_IMAGES,
    K_SINGLE,
    K_MIGRATION,
    K_LAST,
    ACTIONS,
    image_tag,
    image_repo,
    resolve_image,
    _md,
    _name,
    _terminating,
    _cond,
    _ready,
    _scheduled,
    _unschedulable,
    _containers,
    _main_index,
    llmisvc_image,
    pod_image,
    _rs_image,
    _revision,
    _owner_uid,
    has_prefix_caching,
    spec_replicas,
    _View,
    _pool_nodes,
    OpEvent,
    OpResult,
    _Failed,
    _Stopped,
    Runner,
    _run,
    _remember_config,
)
from .status import (  # noqa: F401
    PodRow,
    OpsStatus,
    POOL_AT_ZERO,
    _zero_is_ours,
    workload_selector,
    _read_spend,
    read_status,
)
from .scale import (  # noqa: F401
    QuotaCheck,
    check_quota,
    ScalePlan,
    plan_scale,
    scale,
    _set_replicas,
)
from .zero import (  # noqa: F401
    scale_to_zero,
    resume,
)
from .image import (  # noqa: F401
    _set_image,
    _Rollout,
    _look,
    _scale_rs,
    _drive,
    _cond_time,
    update_image,
    previous_image,
    rollback_image,
)
from .migrate import (  # noqa: F401
    ChecklistItem,
    CHECKLIST,
    ROLLBACK_CHECKLIST,
    MONITOR_SECONDS,
    ItemState,
    is_single_model,
    find_single_model,
    _saved_single,
    migration_status,
    _clean_manifest,
    migrate,
    rollback_migration,
)
from .teardown import (  # noqa: F401
    SCOPES,
    plan_nodes,
    TeardownPlan,
    _service_objects,
    plan_teardown,
    teardown,
)
from .confirm import (  # noqa: F401
    Confirmation,
    describe,
)
from .headless import (  # noqa: F401
    HeadlessOutcome,
    run_headless,
    take_lease,
    run_action,
)

from .schedule import (  # noqa: F401
    ZeroSchedule,
    cancel_schedule,
    deadline_from,
    read_schedule,
    schedule_zero,
)

__all__ = [
    "OpsStatus", "PodRow", "OpEvent", "OpResult", "Runner", "ScalePlan", "QuotaCheck", "TeardownPlan",
    "ChecklistItem", "ItemState", "CHECKLIST", "ROLLBACK_CHECKLIST", "SCOPES", "ACTIONS",
    "read_status", "check_quota", "plan_scale", "scale", "scale_to_zero", "resume", "update_image",
    "rollback_image", "previous_image", "resolve_image", "image_tag", "migration_status", "migrate",
    "rollback_migration", "find_single_model", "plan_teardown", "teardown",
]
__all__ += ["Confirmation", "describe", "HeadlessOutcome", "run_headless", "run_action", "take_lease",
            "ZeroSchedule", "schedule_zero", "cancel_schedule", "read_schedule", "deadline_from"]
