"""`canvas org create` prints a one-time console link where the first Admin sets its password."""
from __future__ import annotations

import json

from click.testing import CliRunner

from canvas import create_app
from canvas.cli import cli
from tests.console.conftest import PASSWORD, Browser


def test_org_create_prints_a_single_use_console_link_for_the_first_admin(tmp_path):
    env = {"CANVAS_DATA_DIR": str(tmp_path), "CANVAS_PUBLIC_URL": "https://canvas.example.test/"}
    created = CliRunner().invoke(cli, ["org", "create", "--name", "First", "--admin-email", "first@first.test",
                                       "--json"], env=env)
    assert created.exit_code == 0, created.output
    link = json.loads(created.stdout)["consoleLink"]
    assert link.startswith("https://canvas.example.test/console/activate?token=")
    app = create_app({"DATA_DIR": str(tmp_path), "REDIS_URL": "redis://127.0.0.1:1/0"})
    try:
        browser = Browser(app)
        path = link.removeprefix("https://canvas.example.test")
        form = {"token": path.split("token=")[1], "password": PASSWORD, "confirmation": PASSWORD}
        assert browser.submit("/console/activate", form, form_page=path).status_code == 200
        assert browser.submit("/console/activate", form, form_page=path).status_code == 400, "it works once"
        assert browser.sign_in("first@first.test").status_code == 302
    finally:
        app.extensions["canvas"].close()
