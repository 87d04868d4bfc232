"""/v2/credentials over registered applications (keys masked), and flow versions (content-hashed, immutable)."""
from __future__ import annotations

import pytest

from tests.api.test_v2_support import V2
from tests.api.workflow_helpers import FILE_HUB_APP

FTP_APP = "5f814909-01ea-4395-96ee-5ba7614128fc"


@pytest.fixture()
def v2(app, client, org):
    return V2(app, client, org)


def credential_body(keys: dict, application: str = FILE_HUB_APP, name: str = "Hub") -> dict:
    return {"data": {"type": "credential", "attributes": {"name": name, "keys": keys},
                     "relationships": {"component": {"data": {"type": "component", "id": application}}}}}


def test_credentials_crud(v2):
    created = v2.call("POST", "/v2/credentials", credential_body({}))
    assert created.status_code == 201, created.json
    credential_id = created.json["data"]["id"]
    assert created.json["data"]["relationships"]["component"]["data"]["id"] == FILE_HUB_APP
    listed = v2.call("GET", "/v2/credentials").json
    assert {entry["id"] for entry in listed["data"]} == {credential_id, v2.credential}
    only_hub = v2.call("GET", "/v2/credentials", **{"filter[component]": FILE_HUB_APP}).json["data"]
    assert len(only_hub) == 2
    renamed = v2.call("PATCH", f"/v2/credentials/{credential_id}",
                      {"data": {"type": "credential", "id": credential_id, "attributes": {"name": "Renamed"}}})
    assert renamed.status_code == 200 and renamed.json["data"]["attributes"]["name"] == "Renamed"
    canvas = v2.client.get(f"/api/RegApplication/{credential_id}", headers=v2.org.admin_headers).json
    assert canvas["tagText"] == "Renamed"
    assert v2.call("DELETE", f"/v2/credentials/{credential_id}").status_code == 204
    assert v2.call("GET", f"/v2/credentials/{credential_id}").status_code == 404


def test_credential_secrets_are_masked_and_missing_keys_point_at_keys(v2):
    missing = v2.call("POST", "/v2/credentials", credential_body({}, FTP_APP))
    assert missing.status_code == 400
    assert missing.json["errors"][0]["source"]["pointer"].startswith("/data/attributes/keys")
    no_component = {"data": {"type": "credential", "attributes": {"keys": {}}}}
    assert v2.call("POST", "/v2/credentials", no_component).status_code == 400


def test_credential_in_use_by_a_flow_cannot_be_deleted(v2):
    v2.create()
    answer = v2.call("DELETE", f"/v2/credentials/{v2.credential}")
    assert answer.status_code == 409 and answer.json["errors"][0]["title"] == "Conflict"


def test_each_graph_change_makes_a_content_hashed_version(v2):
    flow = v2.create()
    flow_id, first = flow["id"], flow["relationships"]["latest_version"]["data"]["id"]
    renamed = v2.call("PATCH", f"/v2/flows/{flow_id}",
                      {"data": {"type": "flow", "id": flow_id, "attributes": {"name": "no graph change"}}})
    assert renamed.json["data"]["relationships"]["latest_version"]["data"]["id"] == first
    graph = flow["attributes"]["graph"]
    graph["nodes"][1]["fields"] = {"expression": "$merge([$, {'seen': true}])"}
    changed = v2.call("PATCH", f"/v2/flows/{flow_id}",
                      {"data": {"type": "flow", "id": flow_id, "attributes": {"graph": graph}}})
    assert changed.status_code == 200, changed.json
    second = changed.json["data"]["relationships"]["latest_version"]["data"]["id"]
    assert second != first
    versions = v2.call("GET", f"/v2/flows/{flow_id}/versions").json
    assert [entry["id"] for entry in versions["data"]] == [second, first]
    old = v2.call("GET", f"/v2/flows/{flow_id}/versions/{first}").json["data"]
    assert old["type"] == "flow-version" and old["attributes"]["graph"]["nodes"][1]["fields"] == {"expression": "$"}
    assert v2.call("GET", f"/v2/flows/{flow_id}/versions/{'0' * 40}").status_code == 404


def test_a_canvas_workflow_change_becomes_a_version_when_seen(v2):
    flow_id = v2.create()["id"]
    body = {"id": flow_id, "name": "via Canvas"}
    v2.client.post("/api/UpdateWorkflow", json=body, headers=v2.org.admin_headers)
    versions = v2.call("GET", f"/v2/flows/{flow_id}/versions").json
    assert versions["meta"]["total"] >= 1


def test_a_revert_heads_the_version_history(v2):
    flow = v2.create()
    flow_id, graph_a = flow["id"], flow["attributes"]["graph"]
    ids = [flow["relationships"]["latest_version"]["data"]["id"]]
    for expression in ("$merge([$, {'b': true}])", "$merge([$, {'c': true}])", "$"):  # A -> B -> C -> A
        graph_a["nodes"][1]["fields"] = {"expression": expression}
        changed = v2.call("PATCH", f"/v2/flows/{flow_id}",
                          {"data": {"type": "flow", "id": flow_id, "attributes": {"graph": graph_a}}})
        assert changed.status_code == 200, changed.json
        ids.append(changed.json["data"]["relationships"]["latest_version"]["data"]["id"])
    a, b, c, current = ids
    assert current == a  # content-addressed: the same graph is the same version
    listed = v2.call("GET", f"/v2/flows/{flow_id}/versions").json["data"]
    assert [entry["id"] for entry in listed] == [a, c, b]


def test_concurrent_first_reads_of_the_versions_all_succeed(app, v2):
    """A workflow made in the Canvas dialect has no version until one is first read: four readers at once."""
    import threading

    from tests.api.workflow_helpers import new_workflow, published_template

    template_id = published_template(v2.client, v2.org.admin_headers)
    answers, barrier = [], threading.Barrier(4)
    for _round in range(3):
        workflow_id = new_workflow(v2.client, v2.org.admin_headers, template_id, v2.credential)

        def read(workflow_id: str = workflow_id) -> None:
            client = app.test_client()
            barrier.wait()
            answers.append(client.get(f"/v2/flows/{workflow_id}/versions", headers=v2.headers))

        threads = [threading.Thread(target=read) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert [answer.status_code for answer in answers] == [200] * 12
    assert all(answer.json["meta"]["total"] == 1 for answer in answers)


def test_the_seeds_key_names_are_understood_and_patch_replaces_keys(v2, ftp_server):
    seed_keys = {"host": ftp_server.host, "port": ftp_server.port, "username": ftp_server.username,
                 "password": ftp_server.password}
    created = v2.call("POST", "/v2/credentials/", credential_body(seed_keys, FTP_APP, "seed names"))
    assert created.status_code == 201, created.json
    shown = created.json["data"]["attributes"]
    assert shown["keys"]["address"] == ftp_server.host and shown["keys"]["password"] == "********"
    assert shown["is_authenticated"] is True
    credential_id = created.json["data"]["id"]

    with_secure = {**seed_keys, "password": "********", "secure": False}  # the mask keeps the stored secret
    patched = v2.call("PATCH", f"/v2/credentials/{credential_id}/", {"data": {
        "type": "credential", "id": credential_id, "attributes": {"keys": with_secure}}})
    assert patched.status_code == 200, patched.json
    assert patched.json["data"]["attributes"]["keys"]["secure"] is False
    replaced = v2.call("PATCH", f"/v2/credentials/{credential_id}", {"data": {
        "type": "credential", "id": credential_id, "attributes": {"keys": {**seed_keys, "password": "********"}}}})
    assert replaced.status_code == 200, replaced.json
    assert "secure" not in replaced.json["data"]["attributes"]["keys"]  # left out: cleared, not kept
    without_password = {name: value for name, value in seed_keys.items() if name != "password"}
    refused = v2.call("PATCH", f"/v2/credentials/{credential_id}", {"data": {
        "type": "credential", "id": credential_id, "attributes": {"keys": without_password}}})
    assert refused.status_code == 400  # the whole object replaces the stored one: a required key is missing
    assert refused.json["errors"][0]["source"]["pointer"].startswith("/data/attributes/keys")
