"""http.request each_record under onRecordError `continue`, against a target that fails in chosen ways: a refused
record and one whose outcome is unknown go to the error output (the latter marked so) and the others go on; every
record reaches the target at most once; a target that is down still fails the block."""
from __future__ import annotations

import dataclasses
import json

import pytest

from canvas.applications.redaction import Redactor
from canvas.execution.context import TransientBlockError
from canvas.execution.record_errors import RecordErrors
from canvas.execution.registry import get_block
from tests.integration.blocks.net_support import make_context
from tests.process_tools import free_port
from tests.integration.blocks.test_net_http_once import (  # noqa: F401 - fixtures
    Target, orders, quick_backoff, raw_server, rest,
)


def post_each_continuing(server, tmp_path) -> tuple[list[dict], list[dict]]:  # noqa: ANN001
    """Runs the block with onRecordError continue; gives (its output, its error output's lines)."""
    variables = {"method": "POST", "path": "/orders", "bodyMode": "each_record"}
    errors = RecordErrors(tmp_path, Redactor([]))
    context = dataclasses.replace(make_context("http.request", variables, rest(server), tmp_path),
                                  on_record_error="continue", record_errors=errors)
    output = list(get_block("http.request")().run(context, orders()))
    key = errors.store(context.blob_store, "runs/errors.jsonl")
    if key is None:
        return output, []
    with context.blob_store.open(key) as stream:
        return output, [json.loads(line) for line in stream]


def test_a_refused_record_and_an_unknown_outcome_are_set_aside_and_the_rest_go_on(raw_server, tmp_path):
    target = Target({2: ["400"], 4: ["drop"]})
    output, errors = post_each_continuing(raw_server(target), tmp_path)
    assert [(line["position"], line["record"]["id"], line["outcomeUnknown"]) for line in errors] == [
        (2, 2, False), (4, 4, True)]
    assert "HTTP 400" in errors[0]["error"] and "the outcome is unknown" in errors[1]["error"]
    assert target.processed == {1: 1, 3: 1, 4: 1, 5: 1}  # 4 was processed (then the answer was lost), once
    assert [record_id for record_id, _ in target.deliveries] == [1, 2, 3, 4, 5]  # nothing sent twice
    assert len(output) == 3


def test_a_target_that_is_down_fails_the_block_whatever_the_setting(tmp_path):
    port = free_port()  # nothing listens there: connection refused

    class Down:
        def url(self, path: str) -> str:
            return f"http://127.0.0.1:{port}{path}"

    with pytest.raises(TransientBlockError):
        post_each_continuing(Down(), tmp_path)  # the first record: not about one record, the target is down


def test_a_record_that_keeps_being_turned_away_is_tried_again_in_place_not_the_block(raw_server, tmp_path):
    """Record 3 is turned away (429) more often than `retries` allows: the block gives it another round in place,
    since running the block again would send records 1 and 2 twice."""
    target = Target({3: ["429", "429", "429"]})
    variables = {"method": "POST", "path": "/orders", "bodyMode": "each_record", "retries": 1}
    context = make_context("http.request", variables, rest(raw_server(target)), tmp_path)
    output = list(get_block("http.request")().run(context, orders()))
    assert len(output) == len(target.processed) == 5
    assert target.processed == {record_id: 1 for record_id in (1, 2, 3, 4, 5)}
    assert [record_id for record_id, _ in target.deliveries].count(3) == 4  # 2 a round; the 2nd round went through
