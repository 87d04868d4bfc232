"""Who sees what in v2: an Admin or SuperPartner sees its workspace's flows, executions and logs (and narrows them
with filter[user]); a User sees only its own; no one sees another organization's; changing stays the owner's."""
from __future__ import annotations

import pytest

from tests.api.test_v2_support import V2, basic_headers
from tests.integration.run_helpers import work_off

pytestmark = pytest.mark.usefixtures("clean_run_queue")


def as_account(app, client, org, role: str) -> V2:
    account_id, canvas_headers = org.add_account(role)
    caller = V2(app, client, org)  # makes a File Hub credential for the admin; replaced below
    caller.headers = basic_headers(app, account_id, canvas_headers)
    caller.account_id = account_id
    caller.credential = client.post("/api/RegApplication", headers=canvas_headers, json={
        "applicationId": "9b6a04b3-c91f-4255-9033-6ac7b7a6f935", "credentialsJson": "{}"}).json
    return caller


@pytest.fixture()
def workspace(app, client, org):
    """An admin, a SuperPartner and two Users of one organization, each with a flow that ran once."""
    admin = V2(app, client, org)
    admin.account_id = org.admin_id
    callers = {"admin": admin, "partner": as_account(app, client, org, "SuperPartner"),
               "ann": as_account(app, client, org, "User"), "bob": as_account(app, client, org, "User")}
    flows = {}
    for name, caller in callers.items():
        flows[name] = caller.create(f"{name}'s flow")["id"]
        assert caller.call("POST", f"/v2/flows/{flows[name]}/executions").status_code == 202
        work_off(app)
    return callers, flows


def listed_flows(caller, **params) -> set[str]:
    answer = caller.call("GET", "/v2/flows", **params)
    assert answer.status_code == 200, answer.json
    return {flow["id"] for flow in answer.json["data"]}


def test_managers_see_the_workspace_users_see_their_own(workspace):
    callers, flows = workspace
    everyone = set(flows.values())
    assert listed_flows(callers["admin"]) == everyone
    assert listed_flows(callers["partner"]) == everyone
    assert listed_flows(callers["ann"]) == {flows["ann"]}
    ann_id = callers["ann"].account_id
    assert listed_flows(callers["admin"], **{"filter[user]": ann_id}) == {flows["ann"]}
    assert listed_flows(callers["bob"], **{"filter[user]": ann_id}) == set()


def test_a_manager_reads_another_users_flow_versions_executions_and_logs(workspace):
    callers, flows = workspace
    admin, ann_flow = callers["admin"], flows["ann"]
    assert admin.call("GET", f"/v2/flows/{ann_flow}").json["data"]["id"] == ann_flow
    assert admin.call("GET", f"/v2/flows/{ann_flow}/versions").status_code == 200
    executions = admin.call("GET", "/v2/executions", **{"filter[flow]": ann_flow}).json["data"]
    assert len(executions) == 1
    assert admin.call("GET", f"/v2/executions/{executions[0]['id']}").status_code == 200
    assert admin.call("GET", "/v2/logs", **{"flow_ids[]": ann_flow}).json["total"] > 0
    assert admin.call("GET", "/v2/executions").json["meta"]["total"] == 4


def test_a_user_cannot_read_a_colleagues_flow_or_its_runs(workspace):
    callers, flows = workspace
    bob, ann_flow = callers["bob"], flows["ann"]
    assert bob.call("GET", f"/v2/flows/{ann_flow}").status_code == 404
    assert bob.call("GET", f"/v2/flows/{ann_flow}/versions").status_code == 404
    ann_runs = callers["ann"].call("GET", "/v2/executions").json["data"]
    assert bob.call("GET", f"/v2/executions/{ann_runs[0]['id']}").status_code == 404
    assert bob.call("GET", "/v2/executions").json["meta"]["total"] == 1
    assert bob.call("GET", "/v2/logs", **{"flow_ids[]": ann_flow}).json["total"] == 0


def test_changing_a_colleagues_flow_stays_the_owners(workspace):
    callers, flows = workspace
    renamed = {"data": {"type": "flow", "id": flows["ann"], "attributes": {"name": "not mine"}}}
    assert callers["admin"].call("PATCH", f"/v2/flows/{flows['ann']}", renamed).status_code == 404


def test_no_one_sees_another_organization(workspace, app, client, make_org):
    callers, flows = workspace
    other = V2(app, client, make_org("Other"))
    assert listed_flows(other) == set()
    assert other.call("GET", f"/v2/flows/{flows['admin']}").status_code == 404
    assert other.call("GET", "/v2/executions").json["meta"]["total"] == 0
    assert other.call("GET", "/v2/logs").json["total"] == 0


@pytest.mark.parametrize("path", ["/v2/flows", "/v2/credentials", "/v2/logs"])
def test_workspace_id_is_the_callers_or_404(app, client, org, make_org, path):
    caller = V2(app, client, org)
    assert caller.call("GET", path, workspace_id=org.id).status_code == 200
    other = caller.call("GET", path, workspace_id=make_org("Other").id)
    assert other.status_code == 404 and other.json["errors"][0]["source"] == {"parameter": "workspace_id"}
