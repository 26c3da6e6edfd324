"""Spreading a suite over many runners: shards and the merge of their reports."""
