"""/v2/components: every registered block as a component a graph node's `command` names, its fields as the block
declares its variables; and the `name:action@latest` command form, which names the same block as its key."""
from __future__ import annotations

import pytest

from canvas.execution.registry import all_blocks, get_block
from tests.api.test_v2_support import JSONAPI, V2, linear_body


@pytest.fixture()
def v2(app, client, org):
    return V2(app, client, org)


def all_components(v2) -> list[dict]:
    answer = v2.call("GET", "/v2/components", **{"page[size]": "500"})
    assert answer.status_code == 200 and answer.mimetype == JSONAPI
    return answer.json["data"]


def test_the_list_has_every_registered_block_by_its_key(v2):
    components = all_components(v2)
    assert [component["id"] for component in components] == [block.key for block in all_blocks()]
    for component in components:
        block = get_block(component["id"])
        attributes = component["attributes"]
        assert component["type"] == "component" and component["links"]["self"] == f"/v2/components/{block.key}"
        assert (attributes["title"], attributes["description"]) == (block.title, block.description)
        assert (attributes["takes"], attributes["gives"]) == (block.input_kind, block.output_kind)
        assert attributes["side_effects"] is block.side_effects
        assert attributes["application_kind"] == block.application_kind
        assert [field["name"] for field in attributes["fields"]] == list(block.variables)


def test_a_components_fields_are_the_blocks_variables_with_required_flags_and_defaults(v2):
    block = next(block for block in all_blocks()
                 if any(spec.required for spec in block.variables.values())
                 and any(spec.default is not None for spec in block.variables.values()))
    answer = v2.call("GET", f"/v2/components/{block.key}")
    assert answer.status_code == 200 and answer.json["data"]["id"] == block.key
    fields = {field["name"]: field for field in answer.json["data"]["attributes"]["fields"]}
    assert set(fields) == set(block.variables)
    for name, spec in block.variables.items():
        assert fields[name]["type"] == spec.type and fields[name]["required"] is spec.required, name
        assert fields[name]["description"] == spec.description
        assert fields[name].get("default") == spec.default  # shown where there is one
        assert fields[name].get("choices", []) == list(spec.choices)


def test_a_component_shows_the_command_forms_it_accepts(v2):
    attributes = v2.call("GET", "/v2/components/csv.from_records").json["data"]["attributes"]
    assert attributes["commands"] == ["csv.from_records", "csv:from_records", "csv.from_records@latest",
                                      "csv:from_records@latest"]
    assert attributes["versions"] == ["latest"]
    assert v2.call("GET", "/v2/components/noop").json["data"]["attributes"]["commands"] == ["noop", "noop@latest"]


@pytest.mark.parametrize("component_id", ["no.such_block", "csv:from_records", "CSV.FROM_RECORDS"])
def test_an_unknown_component_is_a_jsonapi_404(v2, component_id):
    answer = v2.call("GET", f"/v2/components/{component_id}")
    assert answer.status_code == 404 and answer.mimetype == JSONAPI
    assert answer.json["errors"][0]["status"] == "404" and component_id in answer.json["errors"][0]["detail"]


def test_components_are_paged_like_every_list(v2):
    keys = [block.key for block in all_blocks()]
    answer = v2.call("GET", "/v2/components", **{"page[size]": "5", "page[number]": "2"})
    assert answer.status_code == 200
    assert [component["id"] for component in answer.json["data"]] == keys[5:10]
    assert answer.json["meta"] == {"page": 2, "per_page": 5, "total": len(keys), "total_pages": -(-len(keys) // 5)}
    assert {"self", "first", "last", "prev", "next"} <= set(answer.json["links"])
    beyond = v2.call("GET", "/v2/components", **{"page[number]": "99"})
    assert beyond.status_code == 200 and beyond.json["data"] == []


@pytest.mark.parametrize("parameter, value", [("page[size]", "0"), ("page[size]", "501"), ("page[number]", "x"),
                                              ("filter[access]", "private")], ids=lambda value: str(value))
def test_bad_or_unknown_list_parameters_answer_400_naming_the_parameter(v2, parameter, value):
    answer = v2.call("GET", "/v2/components", **{parameter: value})
    assert answer.status_code == 400
    assert answer.json["errors"][0]["source"] == {"parameter": parameter}


def test_components_need_credentials(client):
    assert client.get("/v2/components").status_code == 401
    assert client.get("/v2/components/noop").status_code == 401


def with_commands(v2, *commands: str) -> dict:
    body = linear_body(v2.credential, v2.org.id)
    for node, command in zip(body["data"]["attributes"]["graph"]["nodes"], commands):
        node["command"] = command
    return body


def test_a_flow_may_name_its_blocks_in_the_component_form_and_keeps_the_plain_keys(v2):
    plain = v2.call("POST", "/v2/flows", with_commands(v2, "records.from_variable", "jsonata.transform",
                                                       "filehub.write")).json["data"]
    answer = v2.call("POST", "/v2/flows", with_commands(v2, "records:from_variable@latest", "jsonata:transform",
                                                        "filehub.write@latest"))
    assert answer.status_code == 201, answer.json
    flow = answer.json["data"]
    commands = [node["command"] for node in flow["attributes"]["graph"]["nodes"]]
    assert commands == ["records.from_variable", "jsonata.transform", "filehub.write"]
    assert flow["attributes"]["graph"] == plain["attributes"]["graph"]
    assert flow["relationships"]["latest_version"]["data"] == plain["relationships"]["latest_version"]["data"]
    chain = v2.client.get(f"/api/Workflow/{flow['id']}", headers=v2.org.admin_headers).json["chain"]
    assert [entry["block"] for entry in chain] == commands


@pytest.mark.parametrize("command", ["jsonata:transform@1.0.0", "jsonata.transform@2", "jsonata:transform@"])
def test_a_command_with_a_version_other_than_latest_is_422_naming_the_command_and_the_versions(v2, command):
    answer = v2.call("POST", "/v2/flows", with_commands(v2, "records.from_variable", command))
    assert answer.status_code == 422
    error = answer.json["errors"][0]
    assert error["source"]["pointer"] == "/data/attributes/graph/nodes/1/command"
    assert command in error["detail"] and "step_2" in error["detail"] and "latest" in error["detail"]


def test_a_component_form_of_an_unknown_block_is_422_at_its_command(v2):
    answer = v2.call("POST", "/v2/flows", with_commands(v2, "records.from_variable", "jsonata:nothing@latest"))
    assert answer.status_code == 422
    assert answer.json["errors"][0]["source"]["pointer"] == "/data/attributes/graph/nodes/1/command"
    assert "jsonata.nothing" in answer.json["errors"][0]["detail"]
    assert "/v2/components" in answer.json["errors"][0]["detail"]


def test_credentials_says_which_nodes_need_a_credentials_id(v2):
    need = {component["id"]: component["attributes"]["credentials"] for component in all_components(v2)}
    assert (need["ftp.upload"], need["filehub.write"], need["csv.from_records"]) == ("required", "optional", "none")
    optional = with_commands(v2, "records.from_variable", "jsonata.transform", "filehub.write")
    del optional["data"]["attributes"]["graph"]["nodes"][2]["credentials_id"]
    assert v2.call("POST", "/v2/flows", optional).status_code == 201
    required = with_commands(v2, "records.from_variable", "jsonata.transform", "ftp.upload")
    del required["data"]["attributes"]["graph"]["nodes"][2]["credentials_id"]
    required["data"]["attributes"]["graph"]["nodes"][2]["fields"] = {}
    answer = v2.call("POST", "/v2/flows", required)
    assert answer.status_code == 422, answer.json
    assert answer.json["errors"][0]["source"]["pointer"] == "/data/attributes/graph/nodes/2/credentials_id"


def test_a_flow_relates_each_of_its_nodes_to_a_component_that_resolves(v2):
    flow = v2.call("POST", "/v2/flows", with_commands(v2, "records:from_variable@latest", "jsonata.transform",
                                                      "filehub.write")).json["data"]
    related = flow["relationships"]["components"]["data"]
    assert [(entry["id"], entry["meta"]["nodes"]) for entry in related] == [
        ("records.from_variable", ["step_1"]), ("jsonata.transform", ["step_2"]), ("filehub.write", ["step_3"])]
    for entry in related:
        answer = v2.call("GET", f"/v2/components/{entry['id']}")
        assert answer.status_code == 200 and answer.json["data"]["type"] == entry["type"] == "component"


def test_applications_are_the_catalog_applications_a_nodes_credential_may_be_of(app, v2):
    catalog = app.extensions["canvas"].application_catalog
    components = {component["id"]: component["attributes"] for component in all_components(v2)}
    for key, attributes in components.items():
        kinds = {catalog.get(application["id"]).kind for application in attributes["applications"]}
        if attributes["application_kind"] is None:
            assert attributes["applications"] == [], key
        else:
            assert attributes["application_kind"] in kinds or kinds == {"filehub"}, key
    assert {application["short_name"] for application in components["ftp.upload"]["applications"]} == {
        spec.short_name for spec in catalog if spec.kind == "ftp"}
