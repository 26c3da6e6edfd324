"""What runs while tests run: labelled containers, how tests reach them and their readiness,
the e2e stack, per-test resets, migrations, the run manifest, and the reaper that cleans up
after a killed run. Imports `tierharness.config`, `tierharness.engine`, `tierharness.errors`,
`tierharness.process`; nothing above it."""
