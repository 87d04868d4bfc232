"""What the console's forms and query strings send, read into the values the services take; a bad value is a
BadRequestError naming its field, shown beside it."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

from werkzeug.datastructures import MultiDict

from canvas.console.service import RunFilters
from canvas.errors import BadRequestError
from canvas.runs.service import RUN_STATES, TRIGGERS

RERUN_MODES = {"all": "Re-run", "from": "Run from this block", "till": "Run till this block"}


def run_filters(args: MultiDict) -> RunFilters:
    status = _choice(args, "status", RUN_STATES)
    trigger = _choice(args, "trigger", TRIGGERS)
    return RunFilters(status=status, workflow_id=_optional_id(args, "workflow"), trigger=trigger,
                      since=_optional_time(args, "since"), until=_optional_time(args, "until"),
                      failed_first=args.get("order", "failed") != "newest")


def page_number(args: MultiDict) -> int:
    raw = args.get("page", "1")
    if not raw.isdigit() or int(raw) < 1:
        raise BadRequestError("page must be a whole number from 1", field="page")
    return int(raw)


def rerun_request(run, mode: str, block: str | None) -> dict:  # noqa: ANN001 - a WorkflowRun
    """The RunWorkflow body of a re-run of `run`: its whole range again, or from / till one of its blocks."""
    if mode not in RERUN_MODES:
        raise BadRequestError(f"'{mode}' is not a kind of re-run", field="mode")
    request = {"workflowId": run.workflow_id, "dryRun": run.dry_run}
    if mode == "all":
        return {**request, "runFromBlock": run.run_from_block, "runTillBlock": run.run_till_block}
    if not (block or "").isdigit() or int(block) < 1:
        raise BadRequestError("block must be a block number", field="block")
    return {**request, ("runFromBlock" if mode == "from" else "runTillBlock"): int(block)}


def _choice(args: MultiDict, name: str, choices: tuple[str, ...]) -> str | None:
    value = args.get(name) or None
    if value is not None and value not in choices:
        raise BadRequestError(f"{name}: '{value}' is not one of {', '.join(choices)}", field=name)
    return value


def _optional_id(args: MultiDict, name: str) -> uuid.UUID | None:
    value = args.get(name) or None
    if value is None:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise BadRequestError(f"{name}: '{value}' is not a valid id", field=name) from None


def _optional_time(args: MultiDict, name: str) -> datetime | None:
    """A datetime-local field's value (the browser's own format, taken as UTC) or an ISO 8601 time."""
    value = args.get(name) or None
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequestError(f"{name}: '{value}' is not a date and time (YYYY-MM-DDTHH:MM)", field=name) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
