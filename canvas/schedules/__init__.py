"""Workflow schedules: WorkflowScheduler, previews and the occurrence ledger."""
