"""The pytest plugin's machinery; `tierharness.pytest_plugin` holds its hooks and public API.

- `options`: every option declared once, read into one `HarnessOptions` (the doctor reads it too);
- `session`: what a session keeps on pytest's config: its options, read once, and its stash keys;
- `identity`: the run's id and owner, handed from the xdist controller to its workers;
- `plans`: what a worker starts, from the options and `[tool.harness]` (images resolved);
- `records`: the run's reaper, started once, and its manifests;
- `guard`: the check before harness_migrate and harness_seed run (runtime.envguard);
- `provisioning`: a worker's services started, by the first fixture or early (before conftests);
- `fixtures`: the fixture factories and what they give (`HarnessServices`);
- `failures`: one setup error shown once, not once per test.

Imports `tierharness.config`, `tierharness.errors`, `tierharness.runtime`, `tierharness.imaging`,
`tierharness.supply`, `tierharness.engine`; the heavy ones (the engine's client) only when a
fixture or early provisioning needs them, so pytest starts as fast without the harness's tests.
"""
