"""The OpenAPI document: every answer declared, none by a catch-all, error bodies in each dialect's shape; and
/docs served from the app itself."""
from __future__ import annotations

import re
import uuid

import pytest

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


@pytest.fixture()
def document(client) -> dict:
    return client.get("/openapi.json").get_json()


def operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method, operation


def test_no_operation_has_a_default_response(document):
    with_default = [f"{method.upper()} {path}" for path, method, operation in operations(document)
                    if "default" in operation["responses"]]
    assert with_default == []


def test_every_operation_declares_a_success_answer(document):
    without = [f"{method.upper()} {path}" for path, method, operation in operations(document)
               if not any(status.startswith("2") for status in operation["responses"])]
    assert without == []


def test_validation_errors_are_declared_as_the_400_the_api_answers(document):
    assert [path for path, _, operation in operations(document) if "422" in operation["responses"]
            and path.startswith("/api/")] == []
    assert "400" in document["paths"]["/api/RunWorkflow"]["post"]["responses"]


def test_error_bodies_are_in_the_shape_of_each_dialect(document):
    schemas = document["components"]["schemas"]
    assert schemas["CanvasError"]["properties"] == {"State": {"type": "integer"}, "Msg": {"type": "string"}}
    assert "errors" in schemas["JsonApiErrors"]["properties"]
    assert "Error" not in schemas  # flask-smorest's {code, status, message, errors}: no answer has it
    for path, _, operation in operations(document):
        for status, answer in operation["responses"].items():
            if int(status) < 400:
                continue
            ((media_type, content),) = answer["content"].items()
            expected = ("application/vnd.api+json", "JsonApiErrors") if path.startswith("/v2/") else (
                "application/json", "CanvasError")
            assert (media_type, content["schema"]["$ref"].rsplit("/", 1)[1]) == expected, (path, status)


def test_authenticated_operations_declare_401_and_public_ones_do_not(document):
    paths = document["paths"]
    assert "401" in paths["/api/Workflows"]["get"]["responses"]
    assert "401" in paths["/v2/flows"]["get"]["responses"]
    assert "401" not in paths["/api/GetMetaData"]["get"]["responses"]


def test_run_workflow_declares_its_202_with_a_location(document):
    accepted = document["paths"]["/api/RunWorkflow"]["post"]["responses"]["202"]
    assert "Location" in accepted["headers"]
    assert accepted["content"]["application/json"]["schema"]["enum"] == ["Workflow will now run"]


def test_v2_collections_are_documents_whose_data_is_an_array(document):
    def data_type(path: str, method: str = "get", status: str = "200") -> str:
        answer = document["paths"][path][method]["responses"][status]
        return answer["content"]["application/vnd.api+json"]["schema"]["properties"]["data"]["type"]

    assert data_type("/v2/flows") == "array"
    assert data_type("/v2/flows/{flow_id}") == "object"
    assert data_type("/v2/flows", "post", "201") == "object"
    assert data_type("/v2/users/me") == "object"


def test_a_path_id_route_documents_only_the_methods_that_take_an_id(document):
    assert set(document["paths"]["/api/Workflow/{path_id}"]) - {"parameters"} == {"get"}
    # POSTs that act on the path's registered application (register it again, set its grants): served, documented
    assert set(document["paths"]["/api/RegApplication/{path_id}"]) - {"parameters"} == {"get", "post"}
    assert set(document["paths"]["/api/RegApplicationGrants/{path_id}"]) - {"parameters"} == {"get", "post"}


@pytest.mark.parametrize("body", [{"name": "x"}, {"workflowTemplateId": str(uuid.uuid4()), "applications": {}}])
def test_a_method_a_path_id_route_does_not_serve_is_a_405_whatever_the_body(client, org, body):
    """It used to read the body first: a bad one got a 400 about the body, a good one the 405."""
    answer = client.post(f"/api/Workflow/{uuid.uuid4()}", json=body, headers=org.admin_headers)
    assert answer.status_code == 405 and answer.json["State"] == 405
    assert "POST" not in answer.headers["Allow"] and "GET" in answer.headers["Allow"]


def test_docs_page_loads_only_same_origin_assets_and_they_are_served(client):
    page = client.get("/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    references = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert references and all(reference.startswith("/") and not reference.startswith("//")
                              for reference in references), references
    expected_types = {".js": "text/javascript", ".css": "text/css"}
    for reference in references:
        asset = client.get(reference)
        assert asset.status_code == 200, reference
        suffix = reference[reference.rfind("."):]
        assert asset.mimetype == expected_types[suffix], (reference, asset.mimetype)
        assert len(asset.get_data()) > 1000


def test_an_app_built_after_another_serves_the_document_the_first_one_finished(make_app, monkeypatch):
    """A process documents its first app only (DocumentedOnceApi): a later app, which documents nothing, serves the
    same document as one documented from scratch."""
    from canvas.openapi import DocumentedOnceApi

    monkeypatch.setattr(DocumentedOnceApi, "finished_documents", {})
    from_scratch = make_app()
    later = make_app()
    assert from_scratch.extensions["flask-smorest"]["apis"][""]["ext_obj"].spec.to_dict()["paths"]
    assert later.extensions["flask-smorest"]["apis"][""]["ext_obj"].spec.to_dict()["paths"] == {}  # not documented
    first, second = (app.test_client().get("/openapi.json") for app in (from_scratch, later))
    assert first.status_code == second.status_code == 200
    assert second.get_json() == first.get_json()
    assert "/api/RunWorkflow" in second.get_json()["paths"] and "/v2/flows" in second.get_json()["paths"]
    assert second.get_json()["components"]["schemas"].keys() == first.get_json()["components"]["schemas"].keys()


def test_v2_writes_declare_the_409_of_a_document_of_another_type_and_hooks_their_401_and_503(document):
    paths = document["paths"]
    for path, method in [("/v2/flows/{flow_id}/webhooks", "post"), ("/v2/flows/{flow_id}/callbacks", "post"),
                         ("/v2/flows", "post"), ("/v2/flows/{flow_id}", "patch")]:
        assert "409" in paths[path][method]["responses"], (path, method)
    hook = next(operations for path, operations in paths.items() if path.startswith("/v2/hooks/"))
    assert {"401", "503"} <= set(hook["post"]["responses"])
