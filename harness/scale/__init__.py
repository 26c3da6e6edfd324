"""Spreading a suite over many runners: shards and the merge of their reports. Imports
`harness.config`, `harness.errors`, `harness.process`."""
