"""GetMetaData, Describe, OpenAPI, docs and health."""
from __future__ import annotations


def test_getmetadata_lists_every_registered_api_route(client, app):
    from canvas.endpoint import endpoint_meta

    entries = client.get("/api/GetMetaData").json
    assert all(list(entry) == ["name", "parameters", "verb", "authenticate", "description", "returns"]
               for entry in entries)
    listed = {(entry["name"], entry["verb"]) for entry in entries}
    routed = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                meta = endpoint_meta(app.view_functions[rule.endpoint], method)
                assert meta is not None, f"{method} {rule.rule} has no Canvas endpoint metadata"
                routed.add((meta.name, method))
    assert listed == routed
    assert all(entry["description"] for entry in entries)


def test_getmetadata_marks_which_endpoints_authenticate(client):
    by_name = {(entry["name"], entry["verb"]): entry for entry in client.get("/api/GetMetaData").json}
    assert by_name[("GetMetaData", "GET")]["authenticate"] is False
    assert by_name[("Describe", "GET")]["parameters"] == "String name"
    assert by_name[("Authenticate", "GET")]["authenticate"] is True
    assert by_name[("Account", "POST")]["parameters"] == "[FromBody]AddAccountApiDto data"
    assert by_name[("Authenticate", "GET")]["description"] == "Checks authentification"


def test_describe_generates_the_dto_from_its_schema(client):
    described = client.get("/api/Describe?name=addaccountapidto").json
    assert [field["propertyName"] for field in described] == [
        "firstName", "lastName", "email", "phone", "roleName", "countryKey", "globalNotifications",
        "defaultNotificationEmail", "activated"]
    email = next(field for field in described if field["propertyName"] == "email")
    assert email == {"typeName": "string", "propertyName": "email", "genericParameters": "", "isRequired": True}
    activated = next(field for field in described if field["propertyName"] == "activated")
    assert activated["typeName"] == "boolean" and activated["isRequired"] is False


def test_describe_unknown_name_is_404(client):
    response = client.get("/api/Describe?name=NoSuchDto")
    assert response.status_code == 404 and response.json["State"] == 404


def test_openapi_document_and_docs_page(client):
    spec = client.get("/openapi.json").json
    assert "/api/Accounts" in spec["paths"] and "/api/Account" in spec["paths"]
    assert "Consumer" in spec["components"]["securitySchemes"]
    docs = client.get("/docs")
    assert docs.status_code == 200 and b"swagger" in docs.data.lower()


def test_healthz_reports_database_and_redis(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json
    assert {key: body[key] for key in ("status", "database", "redis")} == {"status": "ok", "database": "ok",
                                                                          "redis": "ok"}
    counts = ("workers", "workersWaitingForDatabase", "schedulers", "queuedRuns")
    assert all(isinstance(body[key], int) and body[key] >= 0 for key in counts)


def test_healthz_is_503_when_redis_is_down(make_app, tmp_path):
    app = make_app(REDIS_URL=f"unix://{tmp_path}/nothing.sock")
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json["redis"].startswith("error") and response.json["database"] == "ok"
    assert "workers" not in response.json  # nothing to count without Redis
