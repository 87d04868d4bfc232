"""Credential checks for RegApplication: parsing credentialsJson, validating, merging and masking."""
from __future__ import annotations

from pathlib import Path

import pytest

from canvas.applications.catalog import ApplicationSpec, CredentialField, load_application_catalog
from canvas.applications.credentials import (
    MASK,
    mask_credentials,
    merge_credentials,
    parse_credentials_json,
    validate_credentials,
)
from canvas.errors import ValidationError

SHIPPED_DIR = Path(__file__).resolve().parents[2] / "templates_catalog" / "applications"
SENTINEL = "s3cr3t-Sentinel-Value"  # must never appear in any message

FTP_EXAMPLE = '{"username": null,"password": null,"port": null,"address": null,"secure": true}'
FTP_EXAMPLE_ERROR = (
    "Authentication Error: You must enter a value for User name.\n"
    "You must enter a value for Password.\n"
    "You must enter a value for Port.\n"
    "You must enter a value for Server address."
)


@pytest.fixture(scope="module")
def catalog():
    return load_application_catalog(SHIPPED_DIR)


@pytest.fixture(scope="module")
def ftp(catalog) -> ApplicationSpec:
    return catalog.get_by_short_name("FTP")


@pytest.fixture(scope="module")
def quinyx(catalog) -> ApplicationSpec:
    return catalog.get_by_short_name("QUIN")


def _ftp_values(**changes):
    values = {"username": "anna", "password": "pw", "port": 21, "address": "ftp.example.com"}
    values.update(changes)
    return values


def _error(call, *args) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        call(*args)
    assert caught.value.status == 400
    return caught.value


# --- parse_credentials_json ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("raw", "sent"),
    [({"apikey": "x"}, "an object"), (["x"], "an array"), (None, "null"), (42, "a number"), (True, "a boolean")],
)
def test_credentials_json_must_be_a_string(raw, sent):
    error = _error(parse_credentials_json, raw)
    assert error.message == f"credentialsJson must be a string holding a JSON object, got {sent}"
    assert error.field == "credentialsJson"


@pytest.mark.parametrize(
    ("raw", "held"),
    [("[1, 2]", "an array"), ('"text"', "a string"), ("12", "a number"), ("null", "null"), ("false", "a boolean")],
)
def test_credentials_json_must_hold_an_object(raw, held):
    error = _error(parse_credentials_json, raw)
    assert error.message == f"credentialsJson must hold a JSON object, got {held}"
    assert error.field == "credentialsJson"


def test_invalid_json_names_the_position_without_quoting_the_text():
    error = _error(parse_credentials_json, '{"password": "' + SENTINEL + '",}')
    assert error.message.startswith("credentialsJson is not valid JSON: ")
    assert "line 1 column" in error.message
    assert SENTINEL not in error.message
    assert error.field == "credentialsJson"


@pytest.mark.parametrize("raw", ['{"port": NaN}', '{"port": Infinity}', '{"port": -Infinity}'])
def test_non_json_constants_are_refused(raw):
    assert _error(parse_credentials_json, raw).message.startswith("credentialsJson is not valid JSON: ")


def test_document_example_1_parses_and_validates(quinyx):
    raw = "{\"apikey\":\"01d6-3e54-cff2-c7d8\",\"environment\": \"test\"}"
    assert validate_credentials(quinyx, parse_credentials_json(raw)) == {
        "apikey": "01d6-3e54-cff2-c7d8",
        "environment": "test",
    }


def test_document_example_2_gives_exactly_the_documented_text(ftp):
    error = _error(validate_credentials, ftp, parse_credentials_json(FTP_EXAMPLE))
    assert error.message == FTP_EXAMPLE_ERROR


# --- validate_credentials: unknown, missing -------------------------------------------------------------------------

def test_unknown_field_is_named(ftp):
    error = _error(validate_credentials, ftp, _ftp_values(foo=SENTINEL))
    assert error.message == "Unknown credential field 'foo' for application FTP Server"
    assert error.field == "credentialsJson.foo"
    assert SENTINEL not in error.message


def test_unknown_fields_are_reported_before_missing_ones(ftp):
    error = _error(validate_credentials, ftp, {"foo": 1})
    assert error.message == "Unknown credential field 'foo' for application FTP Server"


@pytest.mark.parametrize("empty", ["absent", None, ""])
def test_missing_means_absent_null_or_empty(ftp, empty):
    values = _ftp_values()
    if empty == "absent":
        del values["port"]
    else:
        values["port"] = empty
    error = _error(validate_credentials, ftp, values)
    assert error.message == "Authentication Error: You must enter a value for Port."
    assert error.field == "credentialsJson"


def test_missing_fields_are_listed_in_the_application_order(ftp):
    error = _error(validate_credentials, ftp, {"address": "h", "username": "u"})
    assert error.message == (
        "Authentication Error: You must enter a value for Password.\nYou must enter a value for Port."
    )


def test_missing_fields_are_reported_before_wrong_types(ftp):
    error = _error(validate_credentials, ftp, {"port": "abc"})
    assert error.message.startswith("Authentication Error: You must enter a value for User name.")
    assert "must be a number" not in error.message


def test_optional_field_may_be_left_out(ftp):
    assert validate_credentials(ftp, _ftp_values()) == _ftp_values()
    assert validate_credentials(ftp, _ftp_values(secure=None)) == _ftp_values()
    assert validate_credentials(ftp, _ftp_values(secure="")) == _ftp_values()


def test_application_without_fields(catalog):
    hub = catalog.get_by_short_name("CMAF")
    assert validate_credentials(hub, {}) == {}
    error = _error(validate_credentials, hub, {"x": 1})
    assert error.message == "Unknown credential field 'x' for application File Hub"


# --- validate_credentials: types ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("given", "expected"), [(21, 21), ("21", 21), ("0021", 21), (21.0, 21), (0, 0)])
def test_numbers_become_int(ftp, given, expected):
    assert validate_credentials(ftp, _ftp_values(port=given))["port"] == expected


@pytest.mark.parametrize("given", ["abc", "21a", " 21", "-21", "2.5", 21.5, True, [21], {"n": 21}])
def test_wrong_number(ftp, given):
    error = _error(validate_credentials, ftp, _ftp_values(port=given))
    assert error.message == "Authentication Error: Port must be a number"
    assert error.field == "credentialsJson"


@pytest.mark.parametrize(
    ("given", "expected"), [(True, True), (False, False), ("true", True), ("false", False), ("TRUE", True)]
)
def test_bools_accept_true_false_and_their_strings(ftp, given, expected):
    assert validate_credentials(ftp, _ftp_values(secure=given))["secure"] is expected


@pytest.mark.parametrize("given", ["yes", "1", 1, 0, "on", [True]])
def test_wrong_bool(ftp, given):
    error = _error(validate_credentials, ftp, _ftp_values(secure=given))
    assert error.message == "Authentication Error: Secure (FTPS) must be true or false"


@pytest.mark.parametrize("given", ["prod", "Live", "Live Environment", 1, True])
def test_select_outside_its_options(quinyx, given):
    error = _error(validate_credentials, quinyx, {"apikey": "k", "environment": given})
    assert error.message == "Authentication Error: Environment must be one of live, test"


@pytest.mark.parametrize("given", [12345, True, ["a"], {"a": "b"}])
def test_text_and_password_fields_need_strings_and_never_echo_the_value(ftp, given):
    error = _error(validate_credentials, ftp, _ftp_values(password=given))
    assert error.message == "Authentication Error: Password must be text"
    assert str(given) not in error.message


def test_all_type_problems_are_listed_in_field_order(ftp):
    error = _error(validate_credentials, ftp, _ftp_values(secure="maybe", port="x", username=7))
    assert error.message == (
        "Authentication Error: User name must be text\nPort must be a number\nSecure (FTPS) must be true or false"
    )


def test_strings_are_kept_exactly_as_given(ftp):
    values = _ftp_values(username="  anna ", password="  pa ss\t", address=" host ")
    assert validate_credentials(ftp, values) == values


def test_result_follows_the_field_order(ftp):
    values = {"secure": "false", "address": "h", "port": "22", "password": "p", "username": "u"}
    assert list(validate_credentials(ftp, values)) == ["username", "password", "port", "address", "secure"]


@pytest.mark.parametrize(
    "values",
    [
        _ftp_values(password=12345, port=SENTINEL),
        _ftp_values(secure=SENTINEL),
        {"username": SENTINEL},
        _ftp_values(**{SENTINEL[:3]: SENTINEL}),
    ],
)
def test_no_message_contains_a_value(ftp, values):
    assert SENTINEL not in _error(validate_credentials, ftp, values).message


def test_select_value_is_not_echoed(quinyx):
    assert SENTINEL not in _error(validate_credentials, quinyx, {"apikey": "k", "environment": SENTINEL}).message


# --- merge_credentials ----------------------------------------------------------------------------------------------

def test_merge_replaces_given_keys_only(ftp):
    stored = _ftp_values(secure=True)
    assert merge_credentials(ftp, stored, {"port": "2121", "password": "new"}) == _ftp_values(
        port=2121, password="new", secure=True
    )


def test_merge_null_clears_an_optional_field(ftp):
    assert merge_credentials(ftp, _ftp_values(secure=True), {"secure": None}) == _ftp_values()


def test_merge_null_on_a_required_field_is_missing(ftp):
    error = _error(merge_credentials, ftp, _ftp_values(), {"address": None})
    assert error.message == "Authentication Error: You must enter a value for Server address."


def test_merge_refuses_unknown_fields(ftp):
    error = _error(merge_credentials, ftp, _ftp_values(), {"foo": "x"})
    assert error.message == "Unknown credential field 'foo' for application FTP Server"


def test_merge_validates_types(ftp):
    assert _error(merge_credentials, ftp, _ftp_values(), {"port": "x"}).message == (
        "Authentication Error: Port must be a number"
    )


def test_merge_keeps_a_stored_secret_when_the_mask_is_sent_back(ftp):
    assert merge_credentials(ftp, _ftp_values(password="real"), {"password": MASK})["password"] == "real"


def test_merge_drops_stored_fields_the_catalog_no_longer_has(ftp):
    assert merge_credentials(ftp, _ftp_values(retired="x"), {}) == _ftp_values()


def test_merge_does_not_change_its_inputs(ftp):
    stored, update = _ftp_values(secure=True), {"secure": None}
    merge_credentials(ftp, stored, update)
    assert stored == _ftp_values(secure=True) and update == {"secure": None}


# --- mask_credentials -----------------------------------------------------------------------------------------------

def test_mask_hides_secret_fields_only(ftp):
    assert mask_credentials(ftp, _ftp_values(secure=True)) == _ftp_values(password=MASK, secure=True)


@pytest.mark.parametrize("empty", ["", None])
def test_mask_leaves_an_empty_secret_empty(ftp, empty):
    assert mask_credentials(ftp, _ftp_values(password=empty))["password"] == empty


def test_mask_hides_hidden_fields_and_catalog_marked_secrets(catalog):
    sql = catalog.get_by_short_name("SQL")
    assert mask_credentials(sql, {"url": "postgresql://u:pw@h/db"}) == {"url": MASK}
    taso = catalog.get_by_short_name("TASO")
    assert mask_credentials(taso, {"baseUrl": "https://t", "client_id": "id", "client_secret": "cs"}) == {
        "baseUrl": "https://t",
        "client_id": "id",
        "client_secret": MASK,
    }


def test_mask_hides_keys_the_catalog_does_not_know(ftp):
    assert mask_credentials(ftp, {"legacyToken": "t"}) == {"legacyToken": MASK}


def test_secret_follows_type_hidden_and_secret_flags():
    spec = ApplicationSpec(
        id="0b7e4c1a-52a5-4a63-9b1e-3c1bd4f1a0aa",
        name="X",
        short_name="X",
        description="",
        kind="none",
        credential_fields=(
            CredentialField("plain", "Plain", "text"),
            CredentialField("pw", "Pw", "password"),
            CredentialField("hidden", "Hidden", "textarea", hidden=True),
            CredentialField("marked", "Marked", "text", secret=True),
        ),
    )
    assert spec.secret_field_names == {"pw", "hidden", "marked"}
    assert mask_credentials(spec, {"plain": "a", "pw": "b", "hidden": "c", "marked": "d"}) == {
        "plain": "a",
        "pw": MASK,
        "hidden": MASK,
        "marked": MASK,
    }
