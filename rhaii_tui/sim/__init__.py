"""The built-in simulated cloud (`rhaii-tui --sim`, `rhaii-tui sim serve`).

See docs/EMULATOR_DESIGN.md. Entry points (import them from their modules; this package imports
nothing heavy so that `rhaii_tui.sim.names` stays cheap for the CLI):

- `sim.world.World`: the persistent world (Google APIs + one ClusterSim per cluster).
- `sim.serve.serve_main(...)`: run a world in the foreground; `sim.serve.ensure_world(...)`:
  reuse or start one in the background for `--sim`.
- `sim.testing.run_world(...)`: a world on a background loop for tests and benchmarks.
- `sim.scenarios`: the scenarios and how their starting state is built.
"""
