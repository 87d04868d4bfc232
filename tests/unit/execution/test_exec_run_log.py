"""Block log capture: bounded, secrets redacted, and important lines kept over debug chatter."""
from __future__ import annotations

from canvas.execution.run_log import MAX_LINES_PER_BLOCK, BlockLog, Redactor


def test_secrets_are_redacted_in_captured_lines():
    log = BlockLog("http.get", Redactor(["s3cr3t-token"]))
    log.logger.info("calling with token %s", "s3cr3t-token")
    [line] = log.finished_lines()
    assert "s3cr3t-token" not in line["message"] and "calling with token ***" == line["message"]


def test_info_lines_survive_a_flood_of_debug_lines():
    log = BlockLog("http.get", Redactor([]))
    log.logger.info("starting")
    for page in range(3 * MAX_LINES_PER_BLOCK):
        log.logger.debug("page %d", page)
    log.logger.info("gave 12345 records in %d pages", 3 * MAX_LINES_PER_BLOCK)
    lines = log.finished_lines()
    messages = [line["message"] for line in lines]
    assert len(lines) == MAX_LINES_PER_BLOCK + 1  # the cap, plus the note of what was dropped
    assert messages[0] == "starting" and "gave 12345 records" in messages[-2]
    assert "were not kept" in messages[-1]
    assert all(set(line) == {"time", "level", "message"} for line in lines)
