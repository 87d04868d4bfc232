"""Console templates: the list of the catalog's and the organization's templates (paged), a template's blocks,
applications and versions, instantiating it through the form (one <select> of registered applications per
application it needs, its variables) and upgrading a workflow to a newer version with the merge preview; what a page
never shows (another organization's templates, another account's workflows and registrations)."""
from __future__ import annotations

import html
import uuid

from canvas.catalog import service as catalog
from canvas.console.pages.templates import TEMPLATES_PAGE_SIZE
from canvas.models import Workflow
from tests.api.test_workflow_graphs import graph_body
from tests.api.test_workflow_upgrade import publish_new_version, version_two
from tests.api.workflow_helpers import (
    BLOCK_MAP,
    BLOCK_RECORDS,
    BLOCK_STORE,
    FILE_HUB_APP,
    file_hub_app,
    new_workflow,
    published_template,
    template_body,
)
from tests.console.conftest import signed_in
from tests.integration.run_helpers import THREE_BLOCKS, chain_template

NEW_BLOCK = "00000000-0000-0000-0000-0000000000d4"  # the block version_two adds


def _text(answer) -> str:
    return html.unescape(answer.get_data(as_text=True))


def _audit_entries(client, headers, action: str, object_id: str) -> list[dict]:
    entries = client.get("/api/AuditLog", headers=headers, query_string={"pageSize": 500}).json
    return [entry for entry in entries if entry["action"] == action and entry["objectId"] == object_id]


def _workflows(client, headers) -> list[dict]:
    return client.get("/api/Workflows", headers=headers).json


def _stored_overrides(app, workflow_id: str) -> list[dict]:
    with app.extensions["canvas"].db.transaction() as session:
        return session.get(Workflow, uuid.UUID(workflow_id)).chain_overrides


# --- the list and the detail -------------------------------------------------------------------------------------

def test_the_list_shows_the_catalog_and_the_organizations_templates_never_another_organizations(
        app, org, make_org, client):
    other = make_org("Other")
    ours = template_body()
    ours["name"] = "Ours to File Hub"
    theirs = template_body()
    theirs["name"] = "Theirs to File Hub"
    our_id = published_template(client, org.admin_headers, ours)
    their_id = published_template(client, other.admin_headers, theirs)
    user_id, _headers = org.add_account()
    browser = signed_in(app, user_id)
    listed = browser.get("/console/templates")
    text = _text(listed)
    assert listed.status_code == 200
    assert f'href="/console/templates/{our_id}"' in text and "Ours to File Hub" in text
    assert their_id not in text and "Theirs to File Hub" not in text
    assert "Sample: records to CSV" in text, "the global catalog's templates"
    assert browser.get(f"/console/templates/{their_id}").status_code == 404
    assert browser.get(f"/console/templates/{their_id}/instantiate").status_code == 404
    assert browser.get("/console/templates/not-an-id").status_code == 404


def test_the_list_pages_by_fifty(app, org, client):
    services = app.extensions["canvas"]
    with services.db.transaction() as session:
        for number in range(TEMPLATES_PAGE_SIZE):
            body = {**template_body(), "name": f"Paged {number:03d}"}
            catalog.create_org_template(session, services.application_catalog, uuid.UUID(org.id), body)
    total = int(client.get("/api/WorkflowTemplates", headers=org.admin_headers,
                           query_string={"pageSize": 1}).headers["X-Total-Count"])
    browser = signed_in(app, org.admin_id)
    first = _text(browser.get("/console/templates"))
    assert f"{total} templates, page 1 of 2." in first and 'rel="next"' in first
    assert first.count('href="/console/templates/') == TEMPLATES_PAGE_SIZE
    second = _text(browser.get("/console/templates?page=2"))
    assert second.count('href="/console/templates/') == total - TEMPLATES_PAGE_SIZE and 'rel="prev"' in second
    refused = browser.get("/console/templates?page=0")
    assert refused.status_code == 400 and 'id="page-error"' in refused.get_data(as_text=True)


def test_the_detail_shows_blocks_applications_and_versions(app, org, client):
    headers = org.admin_headers
    template_id = published_template(client, headers)
    publish_new_version(client, headers, template_id, version_two("v2_{runId}.jsonl"), "1.1.0")
    page = signed_in(app, org.admin_id).get(f"/console/templates/{template_id}")
    text = _text(page)
    assert page.status_code == 200
    for block in ("Block 1: Records", "Block 2: Map", "Block 3: Filter", "Block 4: Store"):
        assert block in text, "the blocks of the current version, 1.1.0"
    assert "v2_{runId}.jsonl" in text and "1.0.0" in text and "1.1.0" in text
    assert "File Hub (CMAF)" in text and "you have none registered" in text
    assert f'href="/console/templates/{template_id}/instantiate"' in text


def test_a_graph_templates_blocks_show_what_feeds_them_and_it_instantiates(app, org, client):
    template_id = published_template(client, org.admin_headers, graph_body())
    browser = signed_in(app, org.admin_id)
    text = _text(browser.get(f"/console/templates/{template_id}"))
    assert "Block 1: Records" in text and "nothing (a start block)" in text and "block 2, block 3" in text
    created = browser.submit(f"/console/templates/{template_id}/instantiate", {"name": "Forked"})
    assert created.status_code == 302, _text(created)
    assert [workflow["name"] for workflow in _workflows(client, org.admin_headers)] == ["Forked"]


def test_a_draft_cannot_be_instantiated(app, org, client):
    draft = client.post("/api/WorkflowTemplate", json=template_body(), headers=org.admin_headers).json
    browser = signed_in(app, org.admin_id)
    assert "A Draft" in _text(browser.get(f"/console/templates/{draft}"))
    refused = browser.get(f"/console/templates/{draft}/instantiate")
    assert refused.status_code == 400 and "only Published templates" in _text(refused)


# --- instantiating -----------------------------------------------------------------------------------------------

def test_the_form_offers_only_the_accounts_own_registered_applications_of_each_kind(app, org, client):
    template_id = published_template(client, org.admin_headers)
    user_id, headers = org.add_account()
    _other_id, other_headers = org.add_account()
    theirs = file_hub_app(client, other_headers)
    browser = signed_in(app, user_id)
    none_yet = _text(browser.get(f"/console/templates/{template_id}/instantiate"))
    assert "you have no registered File Hub application" in none_yet
    assert f'href="/console/applications/register/{FILE_HUB_APP}"' in none_yet
    mine = file_hub_app(client, headers)
    form = _text(browser.get(f"/console/templates/{template_id}/instantiate"))
    assert '<label for="applications.CMAF">File Hub</label>' in form
    assert f'<option value="{mine}" selected>' in form and theirs not in form
    for block_id, name in ((BLOCK_RECORDS, "records"), (BLOCK_MAP, "expression"), (BLOCK_STORE, "filename")):
        assert f'<label for="variable.{block_id}.{name}">{name}' in form


def test_instantiating_creates_the_workflow_with_its_bindings_and_changed_variables_only(app, org, client):
    template_id = published_template(client, org.admin_headers)
    user_id, headers = org.add_account()
    registered = file_hub_app(client, headers)
    browser = signed_in(app, user_id)
    path = f"/console/templates/{template_id}/instantiate"
    answer = browser.submit(path, {"name": "Nightly export", "applications.CMAF": registered,
                                   f"variable.{BLOCK_RECORDS}.records": '[\r\n  {"id": 1, "name": "Ann"}\r\n]',
                                   f"variable.{BLOCK_MAP}.expression": "$.{'id': id}",
                                   f"variable.{BLOCK_STORE}.filename": "out_{date:yyyy-MM-dd}.jsonl"})
    assert answer.status_code == 302, _text(answer)
    [workflow] = _workflows(client, headers)
    assert answer.headers["Location"].endswith(f"/console/workflows/{workflow['id']}")
    detail = client.get(f"/api/Workflow/{workflow['id']}", headers=headers).json
    assert detail["name"] == "Nightly export" and detail["regApplicationIds"] == [registered]
    assert detail["chain"][1]["variables"]["expression"] == "$.{'id': id}"
    assert _stored_overrides(app, workflow["id"]) == [{"uniqueBlockId": BLOCK_MAP,
                                                        "variables": {"expression": "$.{'id': id}"}}], \
        "values left as the template has them (the same JSON written otherwise too) are no overrides"
    [created] = _audit_entries(client, org.admin_headers, "workflow.create", workflow["id"])
    assert created["actorId"] == user_id


def test_a_bad_value_is_shown_beside_its_field_and_nothing_is_created(app, org, client):
    template_id = published_template(client, org.admin_headers)
    user_id, headers = org.add_account()
    registered = file_hub_app(client, headers)
    browser = signed_in(app, user_id)
    path = f"/console/templates/{template_id}/instantiate"
    unreadable = browser.submit(path, {"name": "Typed name", "applications.CMAF": registered,
                                       f"variable.{BLOCK_RECORDS}.records": "[not json"})
    text = _text(unreadable)
    assert unreadable.status_code == 400
    assert f'id="variable.{BLOCK_RECORDS}.records-error"' in text and "is not a valid array" in text
    assert 'value="Typed name"' in text and "[not json</textarea>" in text, "the form keeps what was typed"
    wrong_type = browser.submit(path, {"applications.CMAF": registered,
                                       f"variable.{BLOCK_RECORDS}.records": '{"id": 1}'})
    assert wrong_type.status_code == 400 and 'id="chain[0].variables-error"' in _text(wrong_type)
    unbound = browser.submit(path, {"name": "No binding"})
    assert unbound.status_code == 400 and 'id="applications.CMAF-error"' in _text(unbound)
    assert "needs a registered CMAF application" in _text(unbound)
    too_long = browser.submit(path, {"name": "x" * 201, "applications.CMAF": registered})
    assert too_long.status_code == 400 and 'id="name-error"' in _text(too_long)
    assert _workflows(client, headers) == []


def test_another_accounts_registered_application_is_refused(app, org, client):
    template_id = published_template(client, org.admin_headers)
    user_id, _headers = org.add_account()
    _other_id, other_headers = org.add_account()
    theirs = file_hub_app(client, other_headers)
    answer = signed_in(app, user_id).submit(f"/console/templates/{template_id}/instantiate",
                                             {"applications.CMAF": theirs})
    assert answer.status_code == 400 and "unknown registered application" in _text(answer)
    assert _workflows(client, other_headers) == []


def test_instantiating_without_the_csrf_token_is_refused(app, org, client):
    template_id = published_template(client, org.admin_headers)
    registered = file_hub_app(client, org.admin_headers)
    browser = signed_in(app, org.admin_id)
    refused = browser.client.post(f"/console/templates/{template_id}/instantiate",
                                  data={"applications.CMAF": registered})
    assert refused.status_code == 400 and _workflows(client, org.admin_headers) == []


# --- upgrading ---------------------------------------------------------------------------------------------------

def _workflow_with_override(client, headers, filename: str) -> tuple[str, str]:
    template_id = published_template(client, headers)
    workflow_id = new_workflow(client, headers, template_id, file_hub_app(client, headers),
                               chain=[{"uniqueBlockId": BLOCK_STORE, "variables": {"filename": filename}}])
    return template_id, workflow_id


def _version(client, headers, workflow_id: str) -> str:
    return client.get(f"/api/Workflow/{workflow_id}", headers=headers).json["templateVersion"]


def test_the_upgrade_page_shows_the_merge_preview_and_upgrades_on_confirmation(app, org, client):
    headers = org.admin_headers
    template_id, workflow_id = _workflow_with_override(client, headers, "mine_{runId}.jsonl")
    publish_new_version(client, headers, template_id, version_two("out_{date:yyyy-MM-dd}.jsonl", expression="$$"),
                        "1.1.0")
    browser = signed_in(app, org.admin_id)
    path = f"/console/workflows/{workflow_id}/upgrade"
    preview = browser.get(path)
    text = _text(preview)
    assert preview.status_code == 200 and "From 1.0.0 to 1.1.0" in text and "No conflicts" in text
    assert "<td>Filter</td>\n  <td>added" in text
    assert "expression = $$" in text and "filename = mine_{runId}.jsonl" in text
    assert "Upgrade to 1.1.0</button>" in text
    assert browser.client.post(path, data={"version": "1.1.0"}).status_code == 400, "no CSRF token"
    assert _version(client, headers, workflow_id) == "1.0.0"
    done = browser.submit(path, {"version": "1.1.0"})
    assert done.status_code == 302 and done.headers["Location"].endswith(f"/console/workflows/{workflow_id}")
    upgraded = client.get(f"/api/Workflow/{workflow_id}", headers=headers).json
    assert upgraded["templateVersion"] == "1.1.0"
    assert [entry["uniqueBlockId"] for entry in upgraded["chain"]] == [BLOCK_RECORDS, BLOCK_MAP, NEW_BLOCK,
                                                                         BLOCK_STORE]
    assert upgraded["chain"][3]["variables"]["filename"] == "mine_{runId}.jsonl"
    [entry] = _audit_entries(client, headers, "workflow.upgrade", workflow_id)
    assert entry["changes"]["template_version"] == {"before": "1.0.0", "after": "1.1.0"}
    assert "nothing to upgrade to" in _text(browser.get(path))


def test_a_conflicting_upgrade_shows_its_conflicts_and_is_refused(app, org, client):
    headers = org.admin_headers
    template_id, workflow_id = _workflow_with_override(client, headers, "mine.jsonl")
    publish_new_version(client, headers, template_id, version_two("renamed_by_vendor.jsonl"), "2.0.0")
    browser = signed_in(app, org.admin_id)
    path = f"/console/workflows/{workflow_id}/upgrade"
    text = _text(browser.get(path))
    assert "cannot be applied" in text and "changed its default" in text and "Upgrade to" not in text
    refused = browser.submit(path, {"version": "2.0.0"})
    assert refused.status_code == 400 and 'id="form-error"' in _text(refused)
    assert "conflicts with the workflow's overrides" in _text(refused)
    assert _version(client, headers, workflow_id) == "1.0.0"
    assert _audit_entries(client, headers, "workflow.upgrade", workflow_id) == []


def test_a_version_that_is_not_newer_is_shown_beside_the_version_field(app, org, client):
    headers = org.admin_headers
    template_id, workflow_id = _workflow_with_override(client, headers, "mine.jsonl")
    publish_new_version(client, headers, template_id, version_two("mine.jsonl"), "1.1.0")
    answer = signed_in(app, org.admin_id).get(f"/console/workflows/{workflow_id}/upgrade?version=1.0.0")
    assert answer.status_code == 400 and 'id="version-error"' in _text(answer) and "not newer" in _text(answer)


def test_another_accounts_workflow_cannot_be_upgraded(app, org, client):
    headers = org.admin_headers
    template_id, workflow_id = _workflow_with_override(client, headers, "mine.jsonl")
    publish_new_version(client, headers, template_id, version_two("mine.jsonl"), "1.1.0")
    user_id, _headers = org.add_account()
    browser = signed_in(app, user_id)
    path = f"/console/workflows/{workflow_id}/upgrade"
    assert browser.get(path).status_code == 404
    refused = browser.submit(path, {"version": "1.1.0"}, form_page="/console/templates")
    assert refused.status_code == 404 and _version(client, headers, workflow_id) == "1.0.0"


def test_an_application_the_new_version_needs_is_bound_through_its_select(app, org, client):
    headers = org.admin_headers
    template_id = published_template(client, headers, chain_template(THREE_BLOCKS))
    workflow_id = client.post("/api/Workflow", json={"workflowTemplateId": template_id, "applications": {}},
                              headers=headers).json
    with_store = chain_template([*THREE_BLOCKS, ("Store", "filehub.write", {"filename": "x.jsonl"})], ["CMAF"])
    publish_new_version(client, headers, template_id, {key: with_store[key] for key in ("applications", "chain")},
                        "1.1.0")
    registered = file_hub_app(client, headers)
    browser = signed_in(app, org.admin_id)
    path = f"/console/workflows/{workflow_id}/upgrade"
    text = _text(browser.get(path))
    assert "The new version needs CMAF as well." in text and '<label for="applications.CMAF">File Hub</label>' in text
    unbound = browser.submit(path, {"version": "1.1.0"})
    assert unbound.status_code == 400 and 'id="applications.CMAF-error"' in _text(unbound)
    assert _version(client, headers, workflow_id) == "1.0.0"
    assert browser.submit(path, {"version": "1.1.0", "applications.CMAF": registered}).status_code == 302
    upgraded = client.get(f"/api/Workflow/{workflow_id}", headers=headers).json
    assert upgraded["templateVersion"] == "1.1.0" and upgraded["regApplicationIds"] == [registered]
