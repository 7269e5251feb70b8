"""Scenario names of the simulated environment (kept apart so the CLI parses without importing
the emulator). sim/scenarios.py defines one Scenario per name."""

SCENARIOS: tuple[str, ...] = (
    "fresh",
    "cluster-ready",
    "partial",
    "deployed",
    "low-quota",
    "stockout",
    "missing-permission",
    "api-disabled",
    "quotas-api-disabled",
    "no-quota-permission",
    "adc-no-quota-project",
    "no-n1-zone",
    "bad-hf-token",
    "bad-pull-secret",
    "two-nodes",
    "no-netpol-enforcement",
    "slow-compile",
    "flaky-api",
)
