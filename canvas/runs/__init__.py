"""Runs: RunWorkflow, run history, stored outputs, cancelling, comparing outputs."""
