"""The application catalog: the shipped YAML files, the loader's validation, and the documented API shape."""
from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import yaml

from canvas.applications.catalog import (
    ApplicationCatalog,
    CatalogError,
    CredentialField,
    load_application_catalog,
)

SHIPPED_DIR = Path(__file__).resolve().parents[2] / "templates_catalog" / "applications"

# The Applications example of the Canvas REST API document, verbatim except its "...," elision.
DOCUMENTED_APPLICATIONS = r"""
[
{
"id": "07ffd13d-ba57-4d1b-9c46-03c5c919eed0",
"name": "Talentsoft",
"shortName": "TASO",
"description": "HR",
"vendorUrl": "https://www.talentsoft.com/",
"credentialFields": [
{
"ShortName": "baseUrl",
"Name": "Base url",
"Type": "text",
"Value": "",
"Optional": false,
"Desc": "Talentsoft API url.",
"Hidden": false
},
{
"ShortName": "client_id",
"Name": "Client ID",
"Type": "text",
"Value": "",
"Optional": false,
"Desc": "Talentsoft client ID.",
"Hidden": false
},
{
"ShortName": "client_secret",
"Name": "Client secret",
"Type": "text",
"Value": "",
"Optional": false,
"Desc": "Talentsoft client secret.",
"Hidden": false
}
],
"credentialsJson": {
"baseUrl": null,
"client_id": null,
"client_secret": null
},
"tag": "Hr, Premium",
"sessionTimeMins": 0,
"sessionSlidingExpiry": false
},
{
"id": "97cbc3b3-32c7-4e4a-b788-a332ea82aeff",
"name": "Quinyx",
"shortName": "QUIN",
"description": "Workforce planning",
"vendorUrl": "http://www.quinyx.com",
"credentialFields": [
{
"ShortName": "apikey",
"Name": "API key",
"Type": "text",
"Value": "",
"Optional": false,
"Desc": "Your Quinyx API key",
"Hidden": false
},
{
"ShortName": "environment",
"Name": "Environment",
"Type": "select",
"Value": "",
"Options": "live|Live Environment,test|Test Environment",
"Optional": false,
"Desc": "Choose which Quinyx environment you wish to use, live or test.",
"Hidden": false
}
],
"credentialsJson": {
"apikey": null,
"environment": null
},
"tag": "Scheduling,Planning,Premium",
"sessionTimeMins": 0,
"sessionSlidingExpiry": false
},
{
"id": "b5a4a9ed-a686-4b1e-af30-ffd84b7fb2e0",
"name": "Talent Manager",
"shortName": "HRTM",
"description": "HR solution",
"vendorUrl": "http://www.hr-manager.net",
"credentialFields": [
{
"ShortName": "customeralias",
"Name": "Customer alias",
"Type": "text",
"Value": "",
"Optional": false,
"Desc": "Your customer alias.",
"Hidden": false
},
{
"ShortName": "apikey",
"Name": "Your API key",
"Type": "text",
"Value": "",
"Optional": false,
"Desc": "Your API key.",
"Hidden": false
}
],
"credentialsJson": {
"customeralias": null,
"apikey": null
},
"tag": "HR",
"sessionTimeMins": 0,
"sessionSlidingExpiry": false
}
]
"""


@pytest.fixture(scope="module")
def catalog() -> ApplicationCatalog:
    return load_application_catalog(SHIPPED_DIR)


# --- the shipped catalog -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("documented", json.loads(DOCUMENTED_APPLICATIONS), ids=lambda app: app["shortName"])
def test_documented_applications_are_shown_exactly_as_in_the_document(catalog, documented):
    shown = catalog.get(documented["id"]).to_api()
    assert shown == documented
    assert json.dumps(shown) == json.dumps(documented)  # same key order, fields included


@pytest.mark.parametrize(
    ("short_name", "application_id", "name", "description"),
    [
        ("TASO", "07ffd13d-ba57-4d1b-9c46-03c5c919eed0", "Talentsoft", "HR"),
        ("QUIN", "97cbc3b3-32c7-4e4a-b788-a332ea82aeff", "Quinyx", "Workforce planning"),
        ("HRTM", "b5a4a9ed-a686-4b1e-af30-ffd84b7fb2e0", "Talent Manager", "HR solution"),
        ("FTP", "5f814909-01ea-4395-96ee-5ba7614128fc", "FTP Server", "File upload and download"),
        ("CMAF", "9b6a04b3-c91f-4255-9033-6ac7b7a6f935", "File Hub", "File automation"),
        ("MSQL", "276511d9-f07f-4fa6-b109-fdb4d62b2429", "Microsoft SQL On-premise", "Database engine"),
    ],
)
def test_documented_ids_names_and_descriptions(catalog, short_name, application_id, name, description):
    spec = catalog.get_by_short_name(short_name)
    assert spec is not None
    assert (spec.id, spec.name, spec.description) == (application_id, name, description)
    assert catalog.get(application_id) is spec


def test_ftp_fields_follow_the_documented_error_text(catalog):
    ftp = catalog.get_by_short_name("FTP")
    assert ftp.kind == "ftp"
    assert [(f.short_name, f.name, f.type, f.optional) for f in ftp.credential_fields] == [
        ("username", "User name", "text", False),
        ("password", "Password", "password", False),
        ("port", "Port", "number", False),
        ("address", "Server address", "text", False),
        ("secure", "Secure (FTPS)", "bool", True),
    ]
    assert ftp.secret_field_names == {"password"}
    assert ftp.verification_enabled


def test_ftp_accepts_the_document_example_keys(catalog):
    example = json.loads('{"username": null,"password": null,"port": null,"address": null,"secure": true}')
    assert list(catalog.get_by_short_name("FTP").to_api()["credentialsJson"]) == list(example)


def test_file_hub_has_no_credentials_and_no_verification(catalog):
    hub = catalog.get_by_short_name("CMAF")
    assert (hub.kind, hub.credential_fields, hub.verification_enabled) == ("filehub", (), False)
    assert hub.to_api()["credentialsJson"] == {}


def test_mssql_has_the_parts_of_an_sqlalchemy_url(catalog):
    mssql = catalog.get_by_short_name("MSQL")
    assert mssql.kind == "sql"
    assert set(mssql.field_names) == {"server", "port", "database", "username", "password"}
    assert mssql.secret_field_names == {"password"}


@pytest.mark.parametrize("short_name", ["MYST2", "FIKE"])
def test_mystore_and_fiken_are_rest_apps_with_a_url_and_a_token(catalog, short_name):
    spec = catalog.get_by_short_name(short_name)
    assert spec.kind == "rest"
    assert {"baseUrl", "token"} <= set(spec.field_names)
    assert "token" in spec.secret_field_names
    assert spec.verification["authType"] == "bearer"


def test_generic_rest_api(catalog):
    rest = catalog.get_by_short_name("REST")
    assert rest.kind == "rest"
    assert rest.field_names == (
        "baseUrl", "authType", "username", "password", "token", "apiKeyName", "apiKey",
        "tokenUrl", "clientId", "clientSecret", "scope", "verifyPath",
    )
    required = [f.short_name for f in rest.credential_fields if not f.optional]
    assert required == ["baseUrl", "authType"]
    assert rest.credential_field("authType").option_values == (
        "none", "basic", "bearer", "apikey_header", "apikey_query", "oauth2_client_credentials",
    )
    assert rest.secret_field_names == {"password", "token", "apiKey", "clientSecret"}


def test_generic_sftp(catalog):
    sftp = catalog.get_by_short_name("SFTP")
    assert sftp.kind == "sftp"
    assert sftp.field_names == ("address", "port", "username", "password", "privateKey", "hostKey")
    assert sftp.credential_field("privateKey").type == "textarea"
    assert sftp.credential_field("hostKey").optional
    assert sftp.secret_field_names == {"password", "privateKey"}


def test_generic_smtp(catalog):
    smtp = catalog.get_by_short_name("SMTP")
    assert smtp.kind == "smtp"
    assert smtp.field_names == ("host", "port", "username", "password", "security", "fromAddress")
    assert smtp.credential_field("security").option_values == ("starttls", "ssl", "none")
    assert smtp.secret_field_names == {"password"}


def test_generic_sql_url_is_hidden_and_secret(catalog):
    sql = catalog.get_by_short_name("SQL")
    assert sql.kind == "sql"
    assert sql.field_names == ("url",)
    assert sql.credential_field("url").hidden
    assert sql.secret_field_names == {"url"}


def test_secrets_the_document_shows_as_text_are_still_secret(catalog):
    assert catalog.get_by_short_name("TASO").secret_field_names == {"client_secret"}
    assert catalog.get_by_short_name("QUIN").secret_field_names == {"apikey"}
    assert catalog.get_by_short_name("HRTM").secret_field_names == {"apikey"}


def test_every_shipped_application(catalog):
    assert {spec.short_name for spec in catalog} == {
        "TASO", "QUIN", "HRTM", "FTP", "CMAF", "MSQL", "MYST2", "FIKE", "REST", "SFTP", "SMTP", "SQL",
    }
    for spec in catalog:
        assert str(uuid.UUID(spec.id)) == spec.id
        assert list(spec.to_api()) == [
            "id", "name", "shortName", "description", "vendorUrl", "credentialFields", "credentialsJson",
            "tag", "sessionTimeMins", "sessionSlidingExpiry",
        ]
        for shown in spec.to_api()["credentialFields"]:
            assert ("Options" in shown) == (shown["Type"] == "select")


def test_iteration_is_by_name_and_stable(catalog):
    names = [spec.name for spec in catalog]
    assert names == sorted(names, key=str.casefold)
    assert [spec["name"] for spec in catalog.to_api()] == names
    assert len(catalog) == len(names)


def test_lookup_by_id_tolerates_case_and_rejects_garbage(catalog):
    ftp_id = "5f814909-01ea-4395-96ee-5ba7614128fc"
    assert catalog.get(ftp_id.upper()).short_name == "FTP"
    assert catalog.get(uuid.UUID(ftp_id)).short_name == "FTP"
    assert ftp_id in catalog
    assert catalog.get("not-a-uuid") is None
    assert catalog.get(str(uuid.uuid4())) is None
    assert catalog.get_by_short_name("ftp") is None  # shortNames are exact, as in the document
    assert 42 not in catalog


# --- verification settings ------------------------------------------------------------------------------------------

def _valid_application(**overrides) -> dict:
    application = {
        "id": "0b7e4c1a-52a5-4a63-9b1e-3c1bd4f1a0aa",
        "name": "Example",
        "shortName": "EXMP",
        "description": "An example",
        "vendorUrl": "",
        "tag": "Test",
        "kind": "rest",
        "isOAuthApp": False,
        "sessionTimeMins": 0,
        "sessionSlidingExpiry": False,
        "verification": {"enabled": True, "path": "/status"},
        "credentialFields": [
            {"ShortName": "baseUrl", "Name": "Base url", "Type": "text"},
            {"ShortName": "password", "Name": "Password", "Type": "password"},
            {"ShortName": "env", "Name": "Environment", "Type": "select", "Options": "live|Live,test|Test"},
        ],
    }
    application.update(overrides)
    return application


def _write(directory: Path, name: str, content: dict | str) -> Path:
    path = directory / name
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False))
    return path


@pytest.mark.parametrize(
    ("verification", "expected"),
    [
        ({"enabled": True, "path": "/status"}, {"path": "/status"}),
        ({"enabled": True}, {}),
        ({"enabled": False, "path": "/status"}, None),
        ({"path": "/status"}, None),
    ],
)
def test_verification_settings(tmp_path, verification, expected):
    _write(tmp_path, "a.yaml", _valid_application(verification=verification))
    spec = load_application_catalog(tmp_path).get_by_short_name("EXMP")
    assert (dict(spec.verification) if spec.verification is not None else None) == expected
    assert spec.verification_enabled == (expected is not None)


def test_optional_keys_take_defaults_and_password_is_hidden_by_default(tmp_path):
    application = _valid_application()
    for key in ("vendorUrl", "isOAuthApp", "sessionTimeMins", "sessionSlidingExpiry", "verification"):
        del application[key]
    _write(tmp_path, "a.yaml", application)
    spec = load_application_catalog(tmp_path).get_by_short_name("EXMP")
    defaults = (spec.vendor_url, spec.is_oauth_app, spec.session_time_mins, spec.session_sliding_expiry)
    assert defaults == ("", False, 0, False)
    assert spec.verification is None
    assert spec.credential_field("password") == CredentialField("password", "Password", "password", hidden=True)
    assert spec.credential_field("baseUrl").to_api() == {
        "ShortName": "baseUrl", "Name": "Base url", "Type": "text", "Value": "",
        "Optional": False, "Desc": "", "Hidden": False,
    }


def test_empty_directory_gives_an_empty_catalog(tmp_path):
    assert len(load_application_catalog(tmp_path)) == 0


def test_missing_directory_is_an_error(tmp_path):
    with pytest.raises(CatalogError, match="does not exist"):
        load_application_catalog(tmp_path / "nowhere")


# --- bad files ------------------------------------------------------------------------------------------------------

def _field(index: int, **changes) -> dict:
    application = _valid_application()
    application["credentialFields"][index].update(changes)
    return application


def _without(key: str) -> dict:
    application = _valid_application()
    del application[key]
    return application


def _without_field_key(index: int, key: str) -> dict:
    application = _valid_application()
    del application["credentialFields"][index][key]
    return application


BAD_FILES = {
    "yaml-syntax": ("id: [unclosed\nname: x\n", "line 2", "YAML syntax error"),
    "not-a-mapping": ("- just\n- a list\n", "(document)", "must be a mapping"),
    "duplicate-yaml-key": ("id: a\nid: b\n", "line 2", "duplicate key 'id'"),
    "missing-name": (_without("name"), "name", "is missing"),
    "missing-credential-fields": (_without("credentialFields"), "credentialFields", "is missing"),
    "unknown-key": (_valid_application(credentialField=[]), "credentialField", "unknown key"),
    "bad-uuid": (_valid_application(id="not-a-uuid"), "id", "not a lowercase UUID"),
    "uppercase-uuid": (_valid_application(id="0B7E4C1A-52A5-4A63-9B1E-3C1BD4F1A0AA"), "id", "not a lowercase UUID"),
    "unknown-kind": (_valid_application(kind="soap"), "kind", "'soap' is not one of ftp, sftp"),
    "name-not-string": (_valid_application(name=12), "name", "must be a string"),
    "negative-session": (_valid_application(sessionTimeMins=-1), "sessionTimeMins", "0 or more"),
    "oauth-not-bool": (_valid_application(isOAuthApp="yes"), "isOAuthApp", "true or false"),
    "verification-not-mapping": (_valid_application(verification="yes"), "verification", "must be a mapping"),
    "fields-not-list": (_valid_application(credentialFields={}), "credentialFields", "must be a list"),
    "field-not-mapping": (_valid_application(credentialFields=["x"]), "credentialFields[0]", "must be a mapping"),
    "unknown-type": (_field(2, Type="passwd"), "credentialFields[2].Type", "'passwd' is not one of text, password"),
    "select-without-options": (_without_field_key(2, "Options"), "credentialFields[2].Options", "is required"),
    "malformed-options": (_field(2, Options="live,test"), "credentialFields[2].Options", "value|Label"),
    "duplicate-option": (_field(2, Options="a|A,a|B"), "credentialFields[2].Options", "unique"),
    "options-on-text": (_field(0, Options="a|A"), "credentialFields[0].Options", "only allowed for Type select"),
    "duplicate-field": (_field(1, ShortName="baseUrl"), "credentialFields[1].ShortName", "duplicate field 'baseUrl'"),
    "missing-field-name": (_without_field_key(1, "Name"), "credentialFields[1].Name", "is missing"),
    "bad-field-short-name": (_field(0, ShortName="base url"), "credentialFields[0].ShortName", "must match"),
    "unknown-field-key": (_field(1, Typ="text"), "credentialFields[1].Typ", "unknown key"),
    "value-not-string": (_field(0, Value=21), "credentialFields[0].Value", "must be a string"),
    "hidden-not-bool": (_field(0, Hidden="no"), "credentialFields[0].Hidden", "true or false"),
}


@pytest.mark.parametrize(("content", "entry", "problem"), BAD_FILES.values(), ids=BAD_FILES.keys())
def test_bad_file_is_refused_naming_file_entry_and_problem(tmp_path, content, entry, problem):
    _write(tmp_path, "good.yaml", _valid_application(id=str(uuid.uuid4()), shortName="GOOD"))
    bad = _write(tmp_path, "bad.yaml", content)
    with pytest.raises(CatalogError) as caught:
        load_application_catalog(tmp_path)
    message = str(caught.value)
    assert str(bad) in message
    assert f": {entry}" in message
    assert problem in message
    assert caught.value.file == str(bad)
    assert entry in caught.value.entry


def test_duplicate_id_across_files_names_both_files(tmp_path):
    first = _write(tmp_path, "a.yaml", _valid_application(shortName="AAA"))
    second = _write(tmp_path, "b.yaml", _valid_application(shortName="BBB"))
    with pytest.raises(CatalogError) as caught:
        load_application_catalog(tmp_path)
    assert str(caught.value).startswith(f"{second}: id: ")
    assert str(first) in str(caught.value)


def test_duplicate_short_name_across_files_names_both_files(tmp_path):
    first = _write(tmp_path, "a.yaml", _valid_application())
    second = _write(tmp_path, "b.yaml", _valid_application(id=str(uuid.uuid4())))
    with pytest.raises(CatalogError) as caught:
        load_application_catalog(tmp_path)
    assert str(caught.value).startswith(f"{second}: shortName: 'EXMP' is already used by {first}")


def test_the_shipped_files_are_not_affected_by_other_extensions(tmp_path):
    _write(tmp_path, "a.yaml", _valid_application())
    (tmp_path / "notes.txt").write_text("not: [yaml")
    assert len(load_application_catalog(tmp_path)) == 1
