"""Every link a v2 answer gives leads to the resource it names, for whoever may see it."""
from __future__ import annotations

import pytest

from tests.api.test_v2_support import V2, basic_headers


@pytest.fixture()
def v2(app, client, org):
    return V2(app, client, org)


def follow(v2, resource: dict) -> dict:
    answer = v2.call("GET", resource["links"]["self"])
    assert answer.status_code == 200, (resource["links"]["self"], answer.json)
    assert (answer.json["data"]["type"], answer.json["data"]["id"]) == (resource["type"], resource["id"])
    return answer.json["data"]


def test_user_workspace_and_api_key_links_resolve(v2, org):
    me = v2.call("GET", "/v2/users/me").json["data"]
    follow(v2, me)
    workspace = me["relationships"]["workspace"]["data"]
    answered = v2.call("GET", f"/v2/workspaces/{workspace['id']}").json["data"]
    assert answered["type"] == "workspace" and answered["attributes"]["name"] == "Acme"
    follow(v2, answered)
    key = v2.call("POST", "/v2/api-keys").json["data"]
    shown = follow(v2, key)
    assert "secret_key" in key["attributes"] and "secret_key" not in shown["attributes"]


def test_webhook_self_link_resolves_without_its_url(v2):
    flow_id = v2.create()["id"]
    created = v2.call("POST", f"/v2/flows/{flow_id}/webhooks", {"data": {"type": "webhook", "attributes": {}}})
    assert created.status_code == 201
    shown = follow(v2, created.json["data"])
    assert shown["attributes"]["url"] is None


def test_a_user_sees_itself_but_not_others_and_no_other_workspace(app, client, org, make_org):
    user_id, user_canvas_headers = org.add_account("User")
    user = V2.__new__(V2)
    user.client, user.org, user.headers = client, org, basic_headers(app, user_id, user_canvas_headers)
    assert user.call("GET", f"/v2/users/{user_id}").status_code == 200
    assert user.call("GET", f"/v2/users/{org.admin_id}").status_code == 404
    other = make_org("Other")
    assert user.call("GET", f"/v2/workspaces/{other.id}").status_code == 404
    assert user.call("GET", f"/v2/users/{other.admin_id}").status_code == 404


def test_an_admin_sees_the_users_of_its_workspace_only(v2, org, make_org):
    user_id, _headers = org.add_account("User")
    assert v2.call("GET", f"/v2/users/{user_id}").json["data"]["id"] == user_id
    assert v2.call("GET", f"/v2/users/{make_org('Other').admin_id}").status_code == 404
    assert v2.call("GET", "/v2/api-keys/00000000-0000-0000-0000-000000000000").status_code == 404
