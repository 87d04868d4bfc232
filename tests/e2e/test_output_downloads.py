"""A block's stored output downloaded through a real `canvas api` (gunicorn), whatever its file is called: a header
is Latin-1 on the wire, so a name in another script, or with a quote or a line break in it, must still give the
file, named as the block named it (RFC 6266's filename*, decoded as a browser does)."""
from __future__ import annotations

import pytest
import requests
from werkzeug.http import parse_options_header

from tests.e2e.http_api import api_serving
from tests.integration.run_helpers import THREE_BLOCKS, make_workflow, run_and_work

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("clean_run_queue")]

# The name a block gave its file, and the name the download gives it: a control character cannot be in a header
NAMES = {"员工 Øst.csv": "员工 Øst.csv", 'the "best" one.csv': 'the "best" one.csv', "two\nlines.csv": "two_lines.csv",
         "tab\tbed.csv": "tab_bed.csv", "plain.csv": "plain.csv"}


def test_a_file_output_downloads_under_its_own_name_whatever_the_characters(app, client, org, tmp_path):
    expected = {}
    for name, shown in NAMES.items():
        blocks = [THREE_BLOCKS[0], ("To CSV", "csv.from_records", {"filename": name})]
        finished = run_and_work(client, app, org.admin_headers, make_workflow(client, org.admin_headers, blocks))
        assert finished["status"] == "Succeeded", finished["error"]
        assert finished["blocks"][1]["output"]["fileName"] == name
        expected[finished["id"]] = shown
    with api_serving(app, tmp_path / "api.log") as base:
        for run_id, shown in expected.items():
            answer = requests.get(f"{base}/api/WorkflowRun/{run_id}/Block/2/Output", headers=org.admin_headers,
                                  timeout=30)
            assert answer.status_code == 200, (shown, answer.text)
            assert answer.content.startswith(b"id,name,city\r\n")
            assert int(answer.headers["Content-Length"]) == len(answer.content)
            disposition, options = parse_options_header(answer.headers["Content-Disposition"])
            assert (disposition, options["filename"]) == ("attachment", shown)
            head = requests.head(f"{base}/api/WorkflowRun/{run_id}/Block/2/Output", headers=org.admin_headers,
                                 timeout=30)
            assert (head.status_code, head.headers["Content-Disposition"]) == (
                200, answer.headers["Content-Disposition"])
