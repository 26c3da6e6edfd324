"""What runs while tests run: labelled containers, how tests reach them and their readiness,
the e2e stack, per-test resets, migrations and the run manifest. (The labels that tie what a
run starts to it, and the reaper that cleans up after a killed run, are the engine's:
`tierharness.engine.labels`, `tierharness.engine.reaper`.)"""
