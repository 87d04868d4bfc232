"""Hostile and unusual input values get a 4xx in the dialect's error shape naming the field, never a 500, on SQLite
and PostgreSQL alike: NUL characters and lone surrogates, bodies nested absurdly deep, integers beyond 64 bits,
booleans that are strings, ids in non-canonical forms; and the Canvas dialect binds property names and query keys
ignoring case, as ASP.NET does."""
from __future__ import annotations

import json
import uuid

import pytest

from tests.api.test_v2_support import JSONAPI, V2
from tests.api.workflow_helpers import FILE_HUB_APP
from tests.integration.run_helpers import make_workflow, run

HUGE = "99999999999999999999999"
INT64_MAX = str(2**63 - 1)
DEEP_ARRAY = "[" * 50_000 + "]" * 50_000


@pytest.fixture()
def v2(app, client, org):
    return V2(app, client, org)


@pytest.fixture()
def workflow_id(client, org):
    return make_workflow(client, org.admin_headers)


def post_raw(client, path: str, text: str, headers: dict):
    return client.post(path, data=text.encode("utf-8", "surrogatepass"),
                       headers={**headers, "Content-Type": "application/json"})


def canvas_refusal(response, status: int = 400) -> str:
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    body = response.json
    assert set(body) == {"State", "Msg"} and body["State"] == status
    return body["Msg"]


def jsonapi_refusal(response, status: int = 400) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert response.mimetype == JSONAPI
    error = response.json["errors"][0]
    assert error["status"] == str(status) and error["detail"]
    return error


# --- 1. NUL characters and lone surrogates -------------------------------------------------------------------------

BAD_TEXTS = [pytest.param("a\u0000b", "NUL", id="nul"), pytest.param("a\ud800b", "surrogate", id="lone-surrogate")]


def canvas_bodies(workflow_template_id: str = str(uuid.uuid4())) -> list:
    return [
        ("/api/Account", lambda bad: {"email": "someone@example.test", "firstName": bad}, "firstName"),
        ("/api/Account", lambda bad: {"email": f"x{bad}@example.test"}, "email"),
        ("/api/RegApplication", lambda bad: {"applicationId": FILE_HUB_APP, "credentialsJson": "{}", "tagText": bad},
         "tagText"),
        ("/api/Workflow", lambda bad: {"workflowTemplateId": workflow_template_id, "applications": {}, "name": bad},
         "name"),
    ]


@pytest.mark.parametrize("bad, word", BAD_TEXTS)
@pytest.mark.parametrize("path, make_body, field", canvas_bodies(), ids=lambda value: str(value)[:20])
def test_canvas_string_fields_refuse_nul_and_lone_surrogates_naming_the_field(client, org, path, make_body, field,
                                                                               bad, word):
    message = canvas_refusal(post_raw(client, path, json.dumps(make_body(bad)), org.admin_headers))
    assert message.startswith(f"{field}:") and word in message


@pytest.mark.parametrize("bad, word", BAD_TEXTS)
def test_v2_attributes_refuse_nul_and_lone_surrogates_with_a_pointer(v2, bad, word):
    from tests.api.test_v2_support import linear_body

    body = linear_body(v2.credential, v2.org.id, name=bad)
    error = jsonapi_refusal(post_raw(v2.client, "/v2/flows", json.dumps(body), v2.headers))
    assert error["source"] == {"pointer": "/data/attributes/name"} and word in error["detail"]


def test_a_nul_in_a_property_name_is_refused_naming_where(client, org):
    body = json.dumps({"email": "someone@example.test", "chain": {"x\u0000": 1}})
    message = canvas_refusal(post_raw(client, "/api/Account", body, org.admin_headers))
    assert message.startswith("chain:") and "property name" in message and "NUL" in message


def test_a_nul_in_a_query_value_is_refused_naming_the_parameter(client, org, v2):
    assert canvas_refusal(client.get("/api/ActivateAccount?token=a%00b")).startswith("token:")
    error = jsonapi_refusal(v2.client.get("/v2/flows?search=a%00b", headers=v2.headers))
    assert error["source"] == {"parameter": "search"} and "NUL" in error["detail"]


def test_a_nul_in_a_path_segment_is_refused(v2):
    flow_id = v2.create()["id"]
    answer = v2.client.get(f"/v2/flows/{flow_id}/versions/a%00b", headers=v2.headers)
    assert 400 <= answer.status_code < 500 and answer.mimetype == JSONAPI


# --- 2. bodies nested too deeply ------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/api/RunWorkflow", "/api/Workflow", "/api/Account"])
@pytest.mark.parametrize("body", [DEEP_ARRAY, '{"workflowId": ' + DEEP_ARRAY + "}",
                                  '{"a": ' * 50_000 + "1" + "}" * 50_000], ids=["array", "in-a-field", "objects"])
def test_canvas_bodies_nested_too_deeply_are_a_400(client, org, path, body):
    assert "nested too deeply" in canvas_refusal(post_raw(client, path, body, org.admin_headers))


def test_v2_bodies_nested_too_deeply_are_a_400(v2):
    body = '{"data": {"type": "flow", "attributes": {"name": ' + DEEP_ARRAY + "}}}"
    assert "nested too deeply" in jsonapi_refusal(post_raw(v2.client, "/v2/flows", body, v2.headers))["detail"]


@pytest.mark.parametrize("path, body, field", [
    ("/api/RegApplication", {"applicationId": FILE_HUB_APP, "credentialsJson": DEEP_ARRAY}, "credentialsJson"),
    ("/api/SchedulePreview", {"scheduleFrequency": DEEP_ARRAY}, "scheduleFrequency"),
], ids=["credentials", "schedule"])
def test_a_json_string_field_holding_a_deep_document_is_a_400(client, org, path, body, field):
    message = canvas_refusal(client.post(path, json=body, headers=org.admin_headers))
    assert message.startswith(f"{field}:") and "nested too deeply" in message


def test_a_json_string_field_holding_a_nul_is_a_400_naming_where(client, org):
    body = {"applicationId": FILE_HUB_APP, "credentialsJson": json.dumps({"password": "a\u0000b"})}
    message = canvas_refusal(client.post("/api/RegApplication", json=body, headers=org.admin_headers))
    assert message.startswith("credentialsJson:") and "NUL" in message and "password" in message


def test_brackets_inside_strings_do_not_count_as_nesting(client, org):
    body = {"email": "someone@example.test", "firstName": "[{" * 100, "lastName": '\\"[' * 60}
    assert client.post("/api/Account", json=body, headers=org.admin_headers).status_code == 200


# --- 3. integers beyond range ---------------------------------------------------------------------------------------

@pytest.mark.usefixtures("clean_run_queue")
@pytest.mark.parametrize("number", [HUGE, INT64_MAX, "2147483648", "1e3", "abc"])
@pytest.mark.parametrize("what", ["Output", "Errors"])
def test_block_numbers_in_paths_out_of_range_are_a_400_naming_them(client, org, workflow_id, number, what):
    run_id = run(client, org.admin_headers, workflow_id).headers["Location"].rsplit("/", 1)[1]
    answer = client.get(f"/api/WorkflowRun/{run_id}/Block/{number}/{what}", headers=org.admin_headers)
    assert canvas_refusal(answer).startswith("number:")


@pytest.mark.parametrize("page", ["1e20", HUGE, INT64_MAX, "1.5", "0"])
def test_canvas_page_numbers_out_of_range_are_a_400_naming_them(client, org, workflow_id, page):
    for path in ("/api/WorkflowRuns", "/api/ScheduleOccurrences"):
        answer = client.get(path, query_string={"workflowId": workflow_id, "page": page}, headers=org.admin_headers)
        assert canvas_refusal(answer).startswith("page:")


def test_the_largest_page_number_is_answered(client, org, workflow_id):
    from canvas.schema_fields import MAX_PAGE_NUMBER

    answer = client.get("/api/WorkflowRuns", query_string={"workflowId": workflow_id, "page": MAX_PAGE_NUMBER,
                                                           "pageSize": 500}, headers=org.admin_headers)
    assert answer.status_code == 200 and answer.json == []


@pytest.mark.parametrize("block", [int(HUGE), 2**63, 2**31, 1.5, "1"])
def test_compare_block_outputs_refuses_block_numbers_out_of_range(client, org, block):
    body = {"runId": str(uuid.uuid4()), "otherRunId": str(uuid.uuid4()), "block": block}
    answer = client.post("/api/CompareBlockOutputs", json=body, headers=org.admin_headers)
    assert canvas_refusal(answer).startswith("block:")


@pytest.mark.parametrize("number", [INT64_MAX, HUGE, "1e20"])
def test_v2_page_numbers_out_of_range_are_a_400_naming_the_parameter(v2, number):
    flow_id = v2.create()["id"]
    for path in ("/v2/flows", f"/v2/flows/{flow_id}/versions", "/v2/executions"):
        answer = v2.client.get(path, query_string={"page[number]": number}, headers=v2.headers)
        assert jsonapi_refusal(answer)["source"] == {"parameter": "page[number]"}


# --- 4. strict booleans ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["yes", "true", 1, 0, "false"])
def test_booleans_must_be_json_true_or_false(client, org, workflow_id, value):
    account = {"email": "someone@example.test", "activated": value}
    answer = client.post("/api/Account", json=account, headers=org.admin_headers)
    assert canvas_refusal(answer).startswith("activated:")
    schedule = {"workflowId": workflow_id, "isScheduled": value}
    answer = client.post("/api/WorkflowScheduler", json=schedule, headers=org.admin_headers)
    assert canvas_refusal(answer).startswith("isScheduled:")


# --- 5. canonical ids -----------------------------------------------------------------------------------------------

def other_forms(identifier: str) -> list[str]:
    plain = uuid.UUID(identifier)
    return ["{" + str(plain) + "}", plain.hex, plain.urn, f" {plain} ", str(plain)[:-1]]


@pytest.mark.usefixtures("clean_run_queue")
def test_ids_in_bodies_must_be_canonical(client, org, workflow_id):
    for form in other_forms(workflow_id):
        assert canvas_refusal(run(client, org.admin_headers, form)).startswith("workflowId:")
    assert run(client, org.admin_headers, workflow_id.upper()).status_code == 202  # as ASP.NET's Guid binding


def test_ids_in_queries_and_paths_must_be_canonical(client, org, workflow_id):
    for form in other_forms(workflow_id):
        answer = client.get("/api/WorkflowRuns", query_string={"workflowId": form}, headers=org.admin_headers)
        assert canvas_refusal(answer).startswith("workflowId:")
        answer = client.get("/api/Workflow", query_string={"id": form}, headers=org.admin_headers)
        assert canvas_refusal(answer).startswith("id:")
        if form.strip() != workflow_id:
            answer = client.get(f"/api/Workflow/{form}", headers=org.admin_headers)
            assert canvas_refusal(answer, 404).startswith("path_id:")
    assert client.get(f"/api/Workflow/{workflow_id.upper()}", headers=org.admin_headers).status_code == 200


def test_managed_account_id_must_be_canonical(client, org):
    account_id, _ = org.add_account()
    for form in other_forms(account_id):
        if form.strip() != account_id:  # spaces around a header value are HTTP's, not the id's
            headers = {**org.admin_headers, "ManagedAccountId": form}
            assert client.get("/api/Workflows", headers=headers).status_code == 403
    assert client.get("/api/Workflows", headers={**org.admin_headers, "ManagedAccountId": account_id}).status_code \
        == 200


def test_v2_id_parameters_must_be_canonical(v2):
    flow_id = v2.create()["id"]
    for form in other_forms(v2.org.admin_id):
        answer = v2.client.get("/v2/flows", query_string={"filter[user]": form}, headers=v2.headers)
        assert jsonapi_refusal(answer)["source"] == {"parameter": "filter[user]"}
    for form in other_forms(flow_id)[:3]:
        assert v2.client.get(f"/v2/flows/{form}", headers=v2.headers).status_code == 404


# --- 6. Canvas property names and query keys ignore case -------------------------------------------------------------

@pytest.mark.usefixtures("clean_run_queue")
def test_canvas_properties_bind_ignoring_case(client, org, workflow_id):
    answer = client.post("/api/RunWorkflow", json={"WorkflowId": workflow_id, "DRYRUN": True},
                         headers=org.admin_headers)
    assert answer.status_code == 202, answer.json


@pytest.mark.usefixtures("clean_run_queue")
def test_nested_canvas_properties_bind_ignoring_case(client, org, workflow_id):
    body = {"RunId": str(uuid.uuid4()), "OtherRunId": str(uuid.uuid4()), "Block": 1}
    answer = client.post("/api/CompareBlockOutputs", json=body, headers=org.admin_headers)
    assert answer.status_code == 404  # the ids were read: the runs are unknown


def test_canvas_query_keys_bind_ignoring_case(client, org, workflow_id):
    answer = client.get("/api/WorkflowRuns", query_string={"WorkflowId": workflow_id, "PageSize": 5},
                        headers=org.admin_headers)
    assert answer.status_code == 200, answer.json
    answer = client.get("/api/Workflow", query_string={"Id": workflow_id}, headers=org.admin_headers)
    assert answer.status_code == 200 and answer.json["id"] == workflow_id
    described = client.get("/api/Describe", query_string={"Name": "AddAccountApiDto"})
    assert described.status_code == 200, described.json


def test_properties_equal_but_for_case_are_refused_naming_both(client, org, workflow_id):
    body = json.dumps({"workflowId": workflow_id, "WorkflowId": workflow_id})
    message = canvas_refusal(post_raw(client, "/api/RunWorkflow", body, org.admin_headers))
    assert "workflowId" in message and "WorkflowId" in message


def test_unknown_properties_are_still_refused_naming_them(client, org, workflow_id):
    answer = client.post("/api/RunWorkflow", json={"workflowId": workflow_id, "Bogus": 1}, headers=org.admin_headers)
    assert canvas_refusal(answer).startswith("Bogus:")


def test_v2_member_names_stay_case_sensitive(v2):
    from tests.api.test_v2_support import linear_body

    body = linear_body(v2.credential, v2.org.id)
    body["data"]["attributes"]["Name"] = body["data"]["attributes"].pop("name")
    assert v2.call("POST", "/v2/flows", body).status_code in (400, 422)


# --- the one decoder, directly --------------------------------------------------------------------------------------

def test_the_nesting_limit_is_exact_and_ignores_brackets_in_strings():
    from canvas.defaults import MAX_JSON_NESTING
    from canvas.json_input import JsonInputError, decode_json

    assert decode_json("[" * MAX_JSON_NESTING + "]" * MAX_JSON_NESTING)
    assert decode_json('["\\\\", "\\"[[[[", "' + "{" * 500 + '"]') == ["\\", '"[[[[', "{" * 500]
    with pytest.raises(JsonInputError, match="nested too deeply"):
        decode_json("[" * (MAX_JSON_NESTING + 1) + "]" * (MAX_JSON_NESTING + 1))


def test_the_decoder_reports_the_path_of_the_first_unstorable_text():
    from canvas.json_input import JsonInputError, decode_json

    with pytest.raises(JsonInputError) as refused:
        decode_json('{"chain": [{"variables": {"x": "ok"}}, {"variables": {"y": "\\u0000"}}]}')
    assert refused.value.where == "chain.1.variables.y"
    paired = decode_json('"\\ud83d\\ude00"')  # a surrogate pair is one character, and fine
    assert paired == "\U0001F600"


# --- 7. values that failed inside the database or a parser (found probing a live service on PostgreSQL) -------------

SQL_APP = "ebc4ddb0-d0e5-4244-985d-5d505bfbfab9"


@pytest.mark.parametrize("port", ["notaport", "99999", "0", "[::1"])
def test_a_database_url_whose_port_is_no_port_is_a_400_in_both_dialects(client, org, v2, port):
    url = f"postgresql://reader:s3cret-pw@db.example.com:{port}/sales"
    canvas = client.post("/api/RegApplication", headers=org.admin_headers, json={
        "applicationId": SQL_APP, "credentialsJson": json.dumps({"url": url})})
    message = canvas_refusal(canvas)
    assert message.startswith("url: ") and "s3cret-pw" not in message
    jsonapi = v2.call("POST", "/v2/credentials", {"data": {"type": "credential", "attributes": {
        "name": "Sales", "keys": {"url": url}}, "relationships": {"component": {"data": {"id": SQL_APP}}}}})
    error = jsonapi_refusal(jsonapi)
    assert error["source"] == {"pointer": "/data/attributes/keys/url"}
    assert "s3cret-pw" not in jsonapi.get_data(as_text=True)


def test_a_credential_name_longer_than_its_column_is_a_400_naming_it(v2):
    created = v2.call("POST", "/v2/credentials", {"data": {"type": "credential", "attributes": {
        "name": "x" * 201, "keys": {}}, "relationships": {"component": {"data": {"id": FILE_HUB_APP}}}}})
    assert jsonapi_refusal(created)["source"] == {"pointer": "/data/attributes/name"}
    renamed = v2.call("PATCH", f"/v2/credentials/{v2.credential}", {"data": {"type": "credential", "attributes": {
        "name": "y" * 201}}})
    assert jsonapi_refusal(renamed)["source"] == {"pointer": "/data/attributes/name"}
    assert v2.call("PATCH", f"/v2/credentials/{v2.credential}", {"data": {"type": "credential", "attributes": {
        "name": "y" * 200}}}).status_code == 200


@pytest.mark.parametrize("component", [5, "abc", [1], True, {"data": 5}, {"data": {"id": 7}}])
def test_a_credentials_component_that_is_no_relationship_is_a_400_pointing_at_it(v2, component):
    answer = v2.call("POST", "/v2/credentials", {"data": {"type": "credential", "attributes": {"name": "n", "keys": {}},
                                                          "relationships": {"component": component}}})
    assert jsonapi_refusal(answer)["source"] == {"pointer": "/data/relationships/component"}


@pytest.mark.parametrize("hmac_settings, field", [
    ({"algorithm": [], "secret": "s" * 20}, "algorithm"), ({"algorithm": {}, "secret": "s" * 20}, "algorithm"),
    ({"secret": "s" * 20, "signature_header": "X-" + "a" * 100}, "signature_header"),
    ({"secret": "s" * 20, "nonce_header": "X Nonce"}, "nonce_header"),
    ({"secret": "s" * 20, "timestamp_header": ["X-T"]}, "timestamp_header")])
def test_webhook_hmac_settings_of_the_wrong_kind_are_a_400_pointing_at_them(v2, hmac_settings, field):
    flow_id = v2.create()["id"]
    answer = v2.call("POST", f"/v2/flows/{flow_id}/webhooks", {"data": {"type": "webhook", "attributes": {
        "hmac": hmac_settings}}})
    assert jsonapi_refusal(answer)["source"] == {"pointer": f"/data/attributes/hmac/{field}"}


@pytest.mark.parametrize("levels", [["2147483648"], [str(2**70)], ["²"], ["101"]])
def test_log_levels_outside_the_scale_are_a_400_naming_the_parameter(v2, levels):
    answer = v2.call("GET", "/v2/logs", **{"levels[]": levels})
    assert jsonapi_refusal(answer)["source"] == {"parameter": "levels[]"}


@pytest.mark.parametrize("instant", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00+14:00"])
def test_a_log_window_whose_offset_leaves_the_calendar_is_a_400(v2, instant):
    assert jsonapi_refusal(v2.call("GET", "/v2/logs", **{"from": instant}))["source"] == {"parameter": "from"}


def test_a_webhook_timestamp_in_superscript_digits_is_a_bad_signature(v2):
    flow_id = v2.create()["id"]
    created = v2.call("POST", f"/v2/flows/{flow_id}/webhooks", {"data": {"type": "webhook", "attributes": {
        "hmac": {"secret": "s" * 20}}}})
    url = created.json["data"]["attributes"]["url"]
    answer = v2.client.post(url[url.index("/v2/hooks/"):], json={}, headers={
        "X-Signature": "sha256=00", "X-Timestamp": "¹⁷⁰⁰", "X-Nonce": "n1"})
    assert jsonapi_refusal(answer, 401)["detail"] == "The webhook signature is missing or invalid"
