"""A user's journey through the web console in a real headless Chromium (issue 20, "Tests that must exist"): set the
password through the link `canvas org create` printed and sign in; register an FTP application against a local FTP
server through the form generated from its credentialFields; instantiate the sample template; run it and watch the
run page turn Succeeded by itself; run from block 2 and see only blocks 2..3 run; set a schedule and see its preview;
read the occurrence ledger. What the pages did is checked through the Canvas API.

The tests are the journey's steps, in order, sharing one signed-in tab (tests/browser/conftest.py): a step that
needs an earlier step's result fails saying which step did not leave it. Selectors are labels and roles, as a user
reads the page; each main page is kept as a screenshot in docs/console/.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ADMIN_EMAIL, PASSWORD, screenshot

pytestmark = pytest.mark.slow

SAMPLE_TEMPLATE = "Sample: records to CSV"  # templates_catalog/templates/sample-records-to-csv.yaml: three blocks
SAMPLE_BLOCKS = ["Block 1: Records from a variable", "Block 2: Map each record", "Block 3: CSV into File Hub"]
FTP_TEMPLATE = "Quinyx Employee Export Into FTP(CSV)"  # needs an FTP and a Quinyx application
RUN_TIMEOUT = 60_000  # ms: a three-block run on a worker of a shared 2-core machine, seen through the live refresh
EVERY_FIVE_SECONDS = "0/5 * * * * ?"  # Quartz, with seconds: the ledger fills within the test


@dataclass
class Journey:
    """What one step leaves for the next."""

    ftp_registration: str | None = None
    workflow_id: str | None = None
    first_run_id: str | None = None

    def needs(self, attribute: str, step: str) -> str:
        value = getattr(self, attribute)
        if value is None:
            pytest.fail(f"this step needs the {attribute} that the step '{step}' leaves; that step failed")
        return value


@pytest.fixture(scope="module")
def journey() -> Journey:
    return Journey()


# --- small readers of what the pages show ----------------------------------------------------------------------------

def fact(scope, name: str):
    """The value (<dd>) of a page's fact list entry named `name` (<dt>)."""
    return scope.locator(f"dl.facts > dt:text-is('{name}') + dd").first


RUN_PAGE = re.compile(r"/console/runs/([0-9a-f-]{36})$")
WORKFLOW_PAGE = re.compile(r"/console/workflows/([0-9a-f-]{36})$")


def id_in_url(page: Page, pattern: re.Pattern) -> str:
    """The id in the address of the page a form's answer led to (once the browser has got there)."""
    page.wait_for_url(pattern)
    return pattern.search(page.url).group(1)


def block_headings(page: Page) -> list[str]:
    return [text.strip() for text in page.get_by_role("heading", level=2).all_inner_texts()
            if text.strip().startswith("Block ")]


def api_json(canvas, path: str, **params):
    answer = canvas.api("GET", path, params=params)
    assert answer.status_code == 200, (path, answer.text)
    return answer.json()


# --- the journey -----------------------------------------------------------------------------------------------------

def test_set_the_password_through_the_printed_link_and_sign_in(page: Page, canvas):
    page.goto(canvas.admin["consoleLink"])
    expect(page.get_by_role("heading", name="Set your password")).to_be_visible()
    page.get_by_label("New password (at least 10 characters)").fill(PASSWORD)
    page.get_by_label("The same password again").fill(PASSWORD)
    page.get_by_role("button", name="Set password").click()
    expect(page.get_by_role("status")).to_contain_text("Your password is set")
    page.get_by_role("link", name="Sign in").last.click()

    page.get_by_label("E-mail").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill("not-the-Password-0")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert").first).to_be_visible()  # a wrong password is refused on the page
    page.get_by_label("Password").fill(PASSWORD)
    page.keyboard.press("Enter")  # a real form: the keyboard submits it

    expect(page.get_by_role("heading", name="Runs", level=1)).to_be_visible()
    expect(page.get_by_text(f"{ADMIN_EMAIL} (Admin)")).to_be_visible()
    expect(page.get_by_role("navigation", name="Console").get_by_role("link", name="Runs")).to_have_attribute(
        "aria-current", "page")


def test_register_an_ftp_application_through_the_generated_form(page: Page, canvas, ftp, journey: Journey):
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Applications").click()
    page.get_by_role("link", name="Register an application from the catalog").click()
    page.get_by_role("link", name="Register FTP Server").click()
    expect(page.get_by_role("heading", name="Register FTP Server")).to_be_visible()

    page.get_by_label("Name in this account (optional)").fill("Journey FTP")
    page.get_by_label("User name").fill(ftp.username)
    page.get_by_label("Password", exact=True).fill("wrong-Password-1")
    page.get_by_label("Port").fill(str(ftp.port))
    page.get_by_label("Server address").fill(ftp.host)
    page.get_by_role("button", name="Verify and register").click()
    # Verified before saving: the server's refusal is shown, what was typed stays, the secret is not sent back
    expect(page.get_by_role("alert").first).to_contain_text("530")
    expect(page.get_by_label("Server address")).to_have_value(ftp.host)
    expect(page.get_by_label("Password", exact=True)).to_have_value("")
    assert "wrong-Password-1" not in page.content()
    assert api_json(canvas, "/api/RegApplications") == []

    page.get_by_label("Password", exact=True).fill(ftp.password)
    screenshot(page, "application-registration")
    page.get_by_role("button", name="Verify and register").click()

    expect(page.get_by_role("heading", name="Registered applications")).to_be_visible()
    row = page.get_by_role("row").filter(has_text="Journey FTP")
    expect(row).to_contain_text("FTP Server")
    expect(row.get_by_role("cell").nth(2)).to_contain_text("Yes")  # authenticated: the server accepted the login
    assert ftp.password not in page.content()
    [registered] = api_json(canvas, "/api/RegApplications")
    assert (registered["tagText"], registered["isAuthenticated"], registered["faulted"]) == ("Journey FTP", True,
                                                                                             False)
    journey.ftp_registration = registered["id"]


def test_instantiate_the_sample_template(page: Page, canvas, journey: Journey):
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Templates").click()
    page.get_by_role("link", name=SAMPLE_TEMPLATE).first.click()
    expect(page.get_by_role("heading", name=SAMPLE_TEMPLATE)).to_be_visible()
    page.get_by_role("link", name="Make a workflow of it…").click()

    expect(page.get_by_role("heading", name=f"New workflow from {SAMPLE_TEMPLATE}")).to_be_visible()
    page.get_by_label("Name", exact=True).fill("Journey sample")
    screenshot(page, "template-instantiate")
    page.get_by_role("button", name="Create the workflow").click()

    expect(page.get_by_role("heading", name="Journey sample")).to_be_visible()
    journey.workflow_id = id_in_url(page, WORKFLOW_PAGE)
    workflows = api_json(canvas, "/api/Workflows")
    assert [(flow["id"], flow["name"]) for flow in workflows] == [(journey.workflow_id, "Journey sample")]


def test_a_template_that_needs_ftp_offers_the_registered_application(page: Page, journey: Journey):
    journey.needs("ftp_registration", "register an FTP application through the generated form")
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Templates").click()
    page.get_by_role("link", name=FTP_TEMPLATE).first.click()
    page.get_by_role("link", name="Make a workflow of it…").click()
    ftp_choice = page.get_by_label("FTP Server", exact=True)  # one select per application, by its name
    expect(ftp_choice).to_have_value(journey.ftp_registration)
    expect(ftp_choice.locator("option:checked")).to_contain_text("Journey FTP")
    expect(page.get_by_text("you have no registered Quinyx")).to_be_visible()  # and a way to register one


def test_run_it_and_watch_it_succeed(page: Page, canvas, journey: Journey):
    workflow_id = journey.needs("workflow_id", "instantiate the sample template")
    page.goto(f"/console/workflows/{workflow_id}")
    page.get_by_role("link", name="Run…").click()
    expect(page).to_have_url(re.compile(rf"/console/workflows/{workflow_id}/run"))
    expect(page.get_by_role("heading", name="Run Journey sample?")).to_be_visible()
    page.get_by_role("radio", name="Run all blocks").check()
    with canvas.worker_paused():
        page.get_by_role("button", name="Start the run").click()
        journey.first_run_id = id_in_url(page, RUN_PAGE)
        expect(fact(page, "Status")).to_have_text("Queued")
        page.evaluate("window.journeyMark = 'not reloaded'")
    # No reload: the page refreshes itself while the run is queued or running (console.js)
    expect(fact(page, "Status")).to_have_text("Succeeded", timeout=RUN_TIMEOUT)
    assert page.evaluate("window.journeyMark") == "not reloaded"
    assert block_headings(page) == SAMPLE_BLOCKS
    for number in (1, 2, 3):
        expect(fact(page.get_by_role("article").nth(number - 1), "Status")).to_have_text("Succeeded")
    expect(fact(page.get_by_role("article").nth(2), "Records in / read / out")).to_have_text("3 / 3 / —")
    screenshot(page, "run-detail")
    run = api_json(canvas, f"/api/WorkflowRun/{journey.first_run_id}")
    assert (run["status"], run["trigger"], run["runFromBlock"], run["runTillBlock"]) == ("Succeeded", "manual", 1, 3)


def test_run_from_block_2_runs_only_blocks_2_and_3(page: Page, canvas, journey: Journey):
    first_run_id = journey.needs("first_run_id", "run it and watch it succeed")
    page.goto(f"/console/runs/{first_run_id}")
    second_block = page.get_by_role("article").filter(has=page.get_by_role("heading", name=SAMPLE_BLOCKS[1]))
    second_block.get_by_role("link", name="Run from this block").click()
    expect(page.get_by_role("heading", name="Run from a block?")).to_be_visible()
    expect(page.get_by_text("A new run of the workflow from block 2 to its last block")).to_be_visible()
    expect(page.get_by_role("radio", name="Run from a block")).to_be_checked()
    expect(page.get_by_label(re.compile("^From block"))).to_have_value("2")
    page.get_by_role("button", name="Start the run").click()

    rerun_id = id_in_url(page, RUN_PAGE)
    assert rerun_id != first_run_id
    expect(fact(page, "Status")).to_have_text("Succeeded", timeout=RUN_TIMEOUT)
    expect(fact(page, "Blocks")).to_have_text("2–3")
    assert block_headings(page) == SAMPLE_BLOCKS[1:]  # block 1 is not part of this run
    run = api_json(canvas, f"/api/WorkflowRun/{rerun_id}")
    assert (run["status"], run["runFromBlock"], run["runTillBlock"]) == ("Succeeded", 2, 3)
    assert [(block["number"], block["status"]) for block in run["blocks"]] == [(2, "Succeeded"), (3, "Succeeded")]


def test_the_runs_list_shows_both_runs(page: Page, journey: Journey):
    journey.needs("first_run_id", "run it and watch it succeed")
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Runs").click()
    expect(page.get_by_text("2 runs")).to_be_visible()
    rows = page.get_by_role("row").filter(has_text="Journey sample")
    expect(rows).to_have_count(2)
    expect(rows.filter(has_text="2–3")).to_have_count(1)
    expect(rows.filter(has_text="1–3")).to_have_count(1)
    screenshot(page, "runs-list")


def test_the_workflow_page_shows_its_blocks_and_last_run(page: Page, journey: Journey):
    journey.needs("first_run_id", "run it and watch it succeed")
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Workflows").click()
    page.get_by_role("link", name="Journey sample", exact=True).click()
    expect(page.get_by_role("heading", name="Journey sample", level=1)).to_be_visible()
    expect(fact(page, "Last run")).to_contain_text("Succeeded")
    for heading in SAMPLE_BLOCKS:
        expect(page.get_by_text(heading.split(": ", 1)[1]).first).to_be_visible()
    screenshot(page, "workflow-detail")


def test_choose_who_is_mailed_about_the_workflows_runs(page: Page, journey: Journey):
    workflow_id = journey.needs("workflow_id", "instantiate the sample template")
    page.goto(f"/console/workflows/{workflow_id}")
    expect(fact(page, "Notifications")).to_have_text("the account's settings")
    page.get_by_text("Settings: name, failure policy, notifications").click()
    page.get_by_label("This workflow's own: mail when").check()
    page.get_by_label("a run succeeds after a failed one").uncheck()
    page.get_by_label("To (one address a line").fill("ops@example.com\nnot an address")
    page.get_by_role("button", name="Save the settings").click()
    expect(page.get_by_role("alert")).to_contain_text("Not a valid email address.")  # beside the addresses
    page.get_by_label("To (one address a line").fill("ops@example.com")
    page.get_by_role("button", name="Save the settings").click()
    expect(page.get_by_role("status")).to_have_text("The changes were saved.")
    expect(fact(page, "Notifications")).to_have_text("failures, missed or skipped schedules to ops@example.com")


def test_set_a_schedule_and_see_the_preview(page: Page, canvas, journey: Journey):
    workflow_id = journey.needs("workflow_id", "instantiate the sample template")
    page.goto(f"/console/workflows/{workflow_id}")
    page.get_by_role("link", name="Schedule", exact=True).click()
    expect(page).to_have_url(re.compile(rf"/console/workflows/{workflow_id}/schedule"))

    expect(page.get_by_role("heading", name="Schedule of Journey sample")).to_be_visible()
    cron, preview = page.get_by_label("Cron expression"), page.locator("#schedule-preview")
    expect(cron).to_have_attribute("aria-describedby", re.compile("schedule-preview"))
    # Typed, not submitted: the preview follows the field (console.js asks console.schedule_preview)
    cron.fill("0 0 25 * * ?")
    expect(preview).to_contain_text("'25' is out of range 0-23")  # the error, in words
    cron.fill("0 30 2 * * ?")
    expect(preview).to_contain_text("The next 10 fire times in UTC")
    expect(preview.get_by_role("listitem")).to_have_count(10)
    expect(preview.get_by_role("listitem").first).to_contain_text("02:30:00 UTC")
    page.get_by_role("heading", name="Change the schedule").evaluate(  # the form and its preview in the picture
        "heading => heading.scrollIntoView({block: 'start'})")
    screenshot(page, "schedule")

    cron.fill(EVERY_FIVE_SECONDS)
    page.get_by_label("On: run the workflow on this schedule").check()
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("status").first).to_have_text("The schedule was saved.")
    expect(fact(page, "Status")).to_have_text("On")
    schedule = api_json(canvas, "/api/WorkflowSchedule", workflowId=workflow_id)
    assert (schedule["isScheduled"], schedule["cronSchedule"]) == (True, EVERY_FIVE_SECONDS), schedule


def test_read_the_ledger(page: Page, canvas, journey: Journey):
    workflow_id = journey.needs("workflow_id", "instantiate the sample template")
    _wait_for_a_scheduled_run(canvas, workflow_id)
    page.goto(f"/console/workflows/{workflow_id}")
    page.get_by_role("link", name="Ledger", exact=True).click()
    expect(page.get_by_role("heading", name="Occurrences of Journey sample")).to_be_visible()
    fired = page.get_by_role("row").filter(has=page.get_by_role("link", name=re.compile(r"^Run [0-9a-f]{8}$")))
    expect(fired.first).to_be_visible()  # an occurrence that fired, linked to the run it started
    expect(fired.first.get_by_role("cell").first).to_contain_text("UTC")  # due, in the schedule's zone
    screenshot(page, "ledger")
    fired.first.get_by_role("link").click()
    expect(page).to_have_url(RUN_PAGE)
    expect(fact(page, "Trigger")).to_contain_text("schedule")

    page.go_back()  # and turn the schedule off again, from the ledger's link to it
    page.get_by_role("link", name="The schedule", exact=True).click()
    page.get_by_label("On: run the workflow on this schedule").uncheck()
    page.get_by_role("button", name="Save", exact=True).click()
    expect(fact(page, "Status")).to_have_text("Off")
    assert api_json(canvas, "/api/WorkflowSchedule", workflowId=workflow_id)["isScheduled"] is False


def _wait_for_a_scheduled_run(canvas, workflow_id: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = api_json(canvas, "/api/WorkflowRuns", workflowId=workflow_id)
        if any(run["trigger"] == "schedule" for run in runs):
            return
        time.sleep(0.5)
    raise AssertionError(f"the schedule started no run within {timeout} s:\n{canvas.log_tail()}")


def test_accounts_page(page: Page):
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Accounts").click()
    expect(page.get_by_role("heading", name="Accounts of Journey", level=1)).to_be_visible()
    expect(page.get_by_role("row").filter(has_text=f"{ADMIN_EMAIL} (you)")).to_have_count(1)
    screenshot(page, "accounts")


def test_the_runs_list_is_usable_by_keyboard(page: Page):
    """Issue 20 item 8: the first Tab reaches "Skip to content"; the filters are a real form the keyboard submits."""
    page.goto("/console/runs")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile("#main$"))
    page.get_by_label("Status").focus()
    page.keyboard.press("End")  # the last state in the list
    status = page.get_by_label("Status").input_value()
    filter_button = page.get_by_role("button", name="Filter")
    for _ in range(30):  # Tab along the filters (a date-time field is several stops) to their button
        page.keyboard.press("Tab")
        if filter_button.evaluate("button => button === document.activeElement"):
            break
    expect(filter_button).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"[?&]status={status}(&|$)"))
    expect(page.get_by_text("No runs match.").or_(page.get_by_role("table"))).to_be_visible()


PHONE = {"width": 375, "height": 812}
# The outermost elements whose right edge passes the screen's, outside the boxes that scroll on their own: what
# makes a page too wide, named by tag, id and classes.
STICKING_OUT = """() => {
  const out = [...document.querySelectorAll('body *')].filter(element =>
    element.getBoundingClientRect().right > window.innerWidth + 1 && !element.closest('.scroll'));
  return out.filter(element => !out.includes(element.parentElement)).slice(0, 5).map(element =>
    element.tagName.toLowerCase() + (element.id ? '#' + element.id : '') +
    [...element.classList].map(name => '.' + name).join('') + ' ' + Math.round(element.getBoundingClientRect().right));
}"""


def test_the_main_pages_fit_a_phone_s_width(page: Page, journey: Journey):
    """Issue 20 item 8: no page is wider than a phone's screen (wide tables scroll inside their own box)."""
    workflow_id = journey.needs("workflow_id", "instantiate the sample template")
    run_id = journey.needs("first_run_id", "run it and watch it succeed")
    phone = page.context.new_page()
    phone.set_viewport_size(PHONE)
    paths = ["/console/runs", f"/console/runs/{run_id}", "/console/workflows", f"/console/workflows/{workflow_id}",
             f"/console/workflows/{workflow_id}/schedule", f"/console/workflows/{workflow_id}/occurrences",
             f"/console/workflows/{workflow_id}/run", "/console/templates", "/console/applications",
             "/console/applications/catalog", "/console/accounts", "/console/health"]
    too_wide = {}
    try:
        for path in paths:
            assert phone.goto(path).status == 200, path
            phone.evaluate("document.querySelectorAll('details').forEach(details => details.open = true)")
            if phone.evaluate("document.documentElement.scrollWidth") > PHONE["width"]:
                too_wide[path] = phone.evaluate(STICKING_OUT)
            if path == "/console/runs":
                screenshot(phone, "runs-list-phone")
    finally:
        phone.close()
    assert too_wide == {}, f"pages wider than {PHONE['width']} px, and what sticks out: {too_wide}"
