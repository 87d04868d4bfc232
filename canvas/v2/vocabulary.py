"""The v2 dialect's words for what shared services call by their Canvas names, applied to every v2 error.

Services are shared by both dialects and speak Canvas ("Workflow …", "runFromBlock", "Registered application …");
a v2 client knows flows, steps and credentials, and the fields of its own requests. Stdlib only: the error renderer
imports it."""
from __future__ import annotations

import re

FIELD_NAMES = {"runFromBlock": "run_from_step", "runTillBlock": "run_till_step", "dryRun": "dry_run",
               "retryFailedRecords": "retry_failed_records", "workflowId": "flow_id",
               "registeredApplicationId": "credentials_id", "tagText": "name", "failurePolicy": "failure_policy",
               "scheduleFrequency.cronSchedule": "cron"}
# Fields named only where an error points, not in its text ("{runId}" is also a filename placeholder)
POINTER_NAMES = {"runId": "retry_failed_records.execution_id"}
_FIELD_PATTERN = re.compile(r"\b(" + "|".join(map(re.escape, FIELD_NAMES)) + r")\b")
_WORDS = [
    (re.compile(r"\bUnknown run\b"), "Unknown execution"),
    (re.compile(r"\bRegistered application\b"), "Credential"),
    (re.compile(r"\bregistered application\b"), "credential"),
    (re.compile(r"\bWorkflow\b"), "Flow"),
    (re.compile(r"\bworkflow(s?)\b"), r"flow\1"),
    (re.compile(r"\bBlock (\d+)\b"), r"Step \1"),
    (re.compile(r"\bblock (\d+)\b"), r"step \1"),
    (re.compile(r"\bblocks (\d+)\.\.(\d+)\b"), r"steps \1..\2"),
]


def v2_message(message: str) -> str:
    message = _FIELD_PATTERN.sub(lambda match: FIELD_NAMES[match.group(1)], message)
    for pattern, replacement in _WORDS:
        message = pattern.sub(replacement, message)
    return message


def v2_field(name: str | None) -> str | None:
    return FIELD_NAMES.get(name) or POINTER_NAMES.get(name, name) if name else name
