"""What the console's forms and query strings send, read into the values the services take; a bad value is a
BadRequestError naming its field, shown beside it."""
from __future__ import annotations

import uuid
from datetime import datetime

from werkzeug.datastructures import MultiDict

from canvas.console.service import RunFilters
from canvas.errors import BadRequestError
from canvas.runs.service import RUN_STATES, TRIGGERS
from canvas.schema_fields import INT32_MAX, MAX_PAGE_NUMBER, parse_id, parse_instant_text, parse_int_text

# The ways to start a run, as the run forms offer them (RunWorkflow's runFromBlock / runTillBlock / dryRun).
RUN_MODES = {"all": "Run all blocks", "from": "Run from a block", "till": "Run till a block",
             "range": "Run a range of blocks"}


def run_filters(args: MultiDict) -> RunFilters:
    status = choice(args, "status", RUN_STATES)
    trigger = choice(args, "trigger", TRIGGERS)
    return RunFilters(status=status, workflow_id=_optional_id(args, "workflow"), trigger=trigger,
                      since=_optional_time(args, "since"), until=_optional_time(args, "until"),
                      failed_first=args.get("order", "failed") != "newest")


def page_count(total: int, size: int) -> int:
    """How many pages of `size` a list of `total` rows fills (one, empty, when there are none)."""
    return max(1, -(-total // size))


def page_number(args: MultiDict) -> int:
    return _whole_number(args.get("page", "1"), MAX_PAGE_NUMBER,  # beyond it, no page's offset fits the database
                         BadRequestError(f"page must be a whole number from 1 to {MAX_PAGE_NUMBER}", field="page"))


def rerun_modes(run) -> dict[str, str]:  # noqa: ANN001 - a WorkflowRun
    """A re-run's choices: "all" is the run's own blocks again."""
    return {**RUN_MODES, "all": f"The same blocks again ({run.run_from_block} to {run.run_till_block})"}


def run_request(workflow_id, values: MultiDict, whole: tuple[int | None, int | None] = (None, None)) -> dict:  # noqa: ANN001
    """The RunWorkflow body a run form asks for: `whole` is the range of mode "all" (a re-run's own range; a
    workflow's every block by default); the service checks the blocks against the workflow."""
    mode = values.get("mode", "all")
    if mode not in RUN_MODES:
        raise BadRequestError(f"'{mode}' is not a way to run", field="mode")
    first = _block_number(values, "runFromBlock") if mode in ("from", "range") else None
    last = _block_number(values, "runTillBlock") if mode in ("till", "range") else None
    if mode == "all":
        first, last = whole
    return {"workflowId": workflow_id, "runFromBlock": first, "runTillBlock": last,
            "dryRun": values.get("dryRun") == "1"}


def _block_number(values: MultiDict, name: str) -> int:
    return _whole_number(values.get(name, ""), INT32_MAX, BadRequestError(f"{name}: choose a block", field=name))


def _whole_number(text: str, maximum: int, refusal: BadRequestError) -> int:
    """ASCII digits only: str.isdigit() also takes superscripts ("²"), which int() then refuses."""
    try:
        return parse_int_text(text, 1, maximum)
    except ValueError:
        raise refusal from None


def compare_request(args: MultiDict) -> tuple[uuid.UUID | None, str | None]:
    """The other run and the record key of a compare form; no other run yet: the form is shown empty."""
    return _optional_id(args, "otherRun"), (args.get("key") or "").strip() or None


def choice(args: MultiDict, name: str, choices: tuple[str, ...]) -> str | None:
    value = args.get(name) or None
    if value is not None and value not in choices:
        raise BadRequestError(f"{name}: '{value}' is not one of {', '.join(choices)}", field=name)
    return value


def _optional_id(args: MultiDict, name: str) -> uuid.UUID | None:
    value = args.get(name) or None
    if value is None:
        return None
    try:
        return parse_id(value)
    except ValueError:
        raise BadRequestError(f"{name}: '{value}' is not a valid id", field=name) from None


def _optional_time(args: MultiDict, name: str) -> datetime | None:
    """A datetime-local field's value (the browser's own format, taken as UTC) or an ISO 8601 time."""
    value = args.get(name) or None
    if value is None:
        return None
    try:
        return parse_instant_text(value)
    except ValueError:
        raise BadRequestError(f"{name}: '{value}' is not a date and time (YYYY-MM-DDTHH:MM)", field=name) from None
