"""HEAD is GET without a body: the same authentication, IP allowlist and answers; and an endpoint limited to a role
refuses other callers before it reads their body, so they learn nothing of its schema."""
from __future__ import annotations

import pytest

from tests.conftest import canvas_headers

BOGUS = canvas_headers("bogus", "bogus")


@pytest.mark.parametrize("path", ["/api/Authenticate", "/api/Applications", "/api/Workflows", "/api/Accounts"])
def test_head_with_wrong_or_no_keys_is_refused_as_get_is(client, org, path):
    for headers in (BOGUS, {}):
        get, head = client.get(path, headers=headers), client.head(path, headers=headers)
        assert get.status_code == 401
        assert head.status_code == 401, path
        assert head.data == b""


@pytest.mark.parametrize("path", ["/api/Authenticate", "/api/Applications", "/api/Workflows", "/api/Accounts"])
def test_head_with_valid_keys_answers_as_get_without_the_body(client, org, path):
    get, head = client.get(path, headers=org.admin_headers), client.head(path, headers=org.admin_headers)
    assert (get.status_code, head.status_code) == (200, 200)
    assert head.headers["Content-Type"] == get.headers["Content-Type"]
    assert head.data == b""


def test_head_is_subject_to_the_ip_allowlist(client, app, org):
    from canvas.models import Organization

    with app.extensions["canvas"].db.transaction() as session:
        session.get(Organization, __import__("uuid").UUID(org.id)).ip_allowlist = ["203.0.113.0/24"]
    answer = client.head("/api/Workflows", headers=org.admin_headers)
    assert answer.status_code == 403


@pytest.mark.parametrize(("path", "body"), [
    ("/api/Account", {"bogusProperty": 1}),
    ("/api/AccountKeys", {"nothing": "valid"}),
    ("/api/IpAllowlist", {"cidrs": "not a list"}),
    ("/api/WorkflowTemplate", {}),
    ("/api/UpdateWorkflowTemplate", {}),
    ("/api/PublishWorkflowTemplate", {}),
])
def test_a_user_is_refused_before_the_body_is_read(client, org, path, body):
    user_headers = org.add_account("User")[1]
    answer = client.post(path, json=body, headers=user_headers)
    assert answer.status_code == 403, answer.json
    assert answer.json["Msg"].startswith("Only ")
    # the same invalid body from an Admin is a 400 about the body: the 403 above did not come from it
    assert client.post(path, json=body, headers=org.admin_headers).status_code == 400


def test_superpartner_may_not_change_the_allowlist_whatever_it_sends(client, org):
    headers = org.add_account("SuperPartner")[1]
    answer = client.post("/api/IpAllowlist", json={"cidrs": ["10.0.0.0/8"]}, headers=headers)
    assert answer.status_code == 403
    assert answer.json["Msg"] == "Only an Admin may change the IP allowlist"
