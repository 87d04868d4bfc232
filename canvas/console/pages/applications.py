"""The console's applications pages: the catalog (GET Applications), registration through a form generated from an
application's credentialFields and verified before saving (POST RegApplication), the account's registered
applications with their faulted state (GET RegApplications), new credentials for one of them (UpdateRegApplication),
and deleting one that no workflow uses (DELETE RegApplication). Each calls the service its API endpoint calls, with
the same checks and messages.

Secrets never reach the browser: a secret field (a password, a Hidden field, a field the catalog marks Secret) is
always rendered empty, on the first showing and after a refused submission alike."""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import marshmallow as ma
from flask import redirect, request, url_for
from werkzeug.datastructures import MultiDict

from canvas.applications import service as applications
from canvas.applications.catalog import ApplicationSpec, CredentialField, parse_options
from canvas.applications.credentials import AUTHENTICATION_ERROR, mask_credentials
from canvas.applications.schemas import (
    AddRegApplicationSchema,
    UpdateRegApplicationSchema,
)
from canvas.console import forms
from canvas.console.resources import acting_account_id, blp, field_errors, render_page
from canvas.errors import BadRequestError, CanvasError, ConflictError, NotFoundError
from canvas.extensions import db_session, services
from canvas.web import flatten_messages

REGISTERED_PAGE_SIZE = 50
TAG_FIELD = "tagText"
CREDENTIALS_FIELD = "credentialsJson"  # where the service reports credential problems, one per line
CLEAR_SUFFIX = "__clear"  # the checkbox that removes an optional secret's stored value on the update form


@dataclass(frozen=True)
class FormField:
    """One input of a generated credentials form: what the template needs to render a credential field."""

    key: str  # the input's name: the field's ShortName, as the API's credentialsJson names it
    label: str
    control: str  # text, number, password, textarea, checkbox or select
    description: str
    optional: bool
    secret: bool
    value: str  # always "" for a secret
    options: tuple[tuple[str, str], ...] = ()


# --- registered applications -----------------------------------------------------------------------------------------

@blp.get("/applications")
def applications_list():  # noqa: ANN201
    session = db_session()
    account_id = acting_account_id()
    page = forms.page_number(request.args)
    rows, total = applications.slice_of_registered(session, account_id, (page - 1) * REGISTERED_PAGE_SIZE,
                                                   REGISTERED_PAGE_SIZE)
    catalog = services().application_catalog
    entries = [_registered_entry(row, catalog.get(row.application_id)) for row in rows]
    pages = forms.page_count(total, REGISTERED_PAGE_SIZE)
    return render_page("applications.html", registered=entries, total=total, page=page, pages=pages,
                       notice=_notice(session, account_id, request.args))


def _registered_entry(row, spec: ApplicationSpec | None) -> dict:  # noqa: ANN001 - a RegisteredApplication
    """The API's view of a registered application (never its credentials) and why it is faulted, which the API's
    answer leaves out."""
    return {**applications.registered_to_api(row, spec), "faultReason": row.fault_reason}


NOTICES = {"saved": "{tag} is saved.", "verified": "{tag}: the stored credentials work."}
DELETED_NOTICE = "The registered application was deleted."


def _notice(session, account_id: uuid.UUID, args: MultiDict) -> str | None:  # noqa: ANN001
    """The line confirming what was just done to a registration (?saved=<id> or ?verified=<id>; ?deleted=1); nothing
    for an id that is not the account's."""
    if args.get("deleted"):
        return DELETED_NOTICE
    for done, text in NOTICES.items():
        if args.get(done):
            try:
                return text.format(tag=applications.get_registered(session, account_id, args[done]).tag_text)
            except CanvasError:
                return None
    return None


# --- the catalog -----------------------------------------------------------------------------------------------------

@blp.get("/applications/catalog")
def applications_catalog():  # noqa: ANN201
    return render_page("applications_catalog.html", applications=list(services().application_catalog))


# --- registration ----------------------------------------------------------------------------------------------------

@blp.route("/applications/register/<application_id>", methods=["GET", "POST"])
def register_application(application_id: str):  # noqa: ANN201
    spec = _catalog_application(application_id)
    errors, shown, tag_text = {}, _default_values(spec), ""
    if request.method == "POST":
        tag_text = request.form.get(TAG_FIELD, "")
        shown = _typed_values(spec, request.form)
        try:
            registered = _register(spec, request.form, tag_text)
            return redirect(url_for("console.applications_list", saved=registered.id))
        except CanvasError as error:
            db_session().rollback()
            errors = _form_errors(spec, error)
    return render_page("application_register.html", status=400 if errors else 200, application=spec,
                       fields=_form_fields(spec, shown), tag_text=tag_text, errors=errors,
                       check_note=_check_note(spec))


def _check_note(spec: ApplicationSpec) -> str:
    """What saving does about verification, in the service's terms (is_authenticated)."""
    if spec.verification_enabled:
        return f"Credentials are checked against {spec.name} before they are saved."
    if applications.is_authenticated(spec, verified=False):
        return f"{spec.name} has nothing to check: it is saved as authenticated."
    return f"{spec.name} offers no way to check credentials: they are saved unchecked, as not authenticated."


def _catalog_application(application_id: str) -> ApplicationSpec:
    spec = services().application_catalog.get(application_id)
    if spec is None:
        raise NotFoundError(f"Unknown application {application_id}", field="applicationId")
    return spec


def _register(spec: ApplicationSpec, form: MultiDict, tag_text: str):  # noqa: ANN202 - a RegisteredApplication
    """POST RegApplication's body from the form, through its schema and its service: verified, then stored."""
    session = db_session()
    body = {"applicationId": spec.id, TAG_FIELD: tag_text or None,
            "credentialsJson": json.dumps(_credentials_to_register(spec, form))}
    data = _loaded(AddRegApplicationSchema(), body)
    registered = applications.register_application(session, services().application_catalog, services().secret_box,
                                                   applications.Verifier.of(services()), acting_account_id(), data)
    session.commit()
    return registered


def _credentials_to_register(spec: ApplicationSpec, form: MultiDict) -> dict:
    """Every field as typed (an empty one is left for the service to call missing, as the API's null is)."""
    return {field.short_name: _submitted(field, form) for field in spec.credential_fields}


# --- updating credentials --------------------------------------------------------------------------------------------

@blp.route("/applications/<registered_id>/credentials", methods=["GET", "POST"])
def update_credentials(registered_id: str):  # noqa: ANN201
    session = db_session()
    registered = applications.get_registered(session, acting_account_id(), registered_id)
    spec = _catalog_application(str(registered.application_id))
    errors, tag_text = {}, registered.tag_text
    stored = shown = _stored_values(spec, registered)
    if request.method == "POST":
        tag_text = request.form.get(TAG_FIELD, "")
        shown = _typed_values(spec, request.form)
        try:
            _update(spec, registered.id, _credentials_update(spec, request.form, stored), tag_text)
            return redirect(url_for("console.applications_list", saved=registered.id))
        except CanvasError as error:
            session.rollback()
            errors = _form_errors(spec, error)
    return _credentials_page(spec, registered, shown, tag_text, errors)


@blp.route("/applications/<registered_id>/delete", methods=["GET", "POST"])
def delete_application(registered_id: str):  # noqa: ANN201
    """A confirmation naming the workflows that use the registration (while any does, it cannot go: they are rebound
    or deleted first, as DELETE RegApplication answers 409), then the deletion, recorded in the audit log."""
    session = db_session()
    registered = applications.get_registered(session, acting_account_id(), registered_id)
    error = None
    if request.method == "POST":
        try:
            applications.delete_registered(session, acting_account_id(), registered.id)
            session.commit()
            return redirect(url_for("console.applications_list", deleted=1))
        except ConflictError as refused:
            session.rollback()
            error = refused.message
    spec = services().application_catalog.get(registered.application_id)
    return render_page("application_delete.html", status=409 if error else 200,
                       registered=_registered_entry(registered, spec),
                       users=applications.workflows_using(session, registered.id), error=error)


@blp.post("/applications/<registered_id>/verify")
def verify_application(registered_id: str):  # noqa: ANN201
    """VerifyRegApplication: the stored credentials checked again; a failure marks the registration faulted (the
    service keeps that even though it refuses) and is shown on its credentials page."""
    session = db_session()
    registered = applications.get_registered(session, acting_account_id(), registered_id)
    spec = _catalog_application(str(registered.application_id))
    try:
        applications.reverify_registered(session, services().application_catalog, services().secret_box,
                                         applications.Verifier.of(services()), acting_account_id(), registered.id)
        session.commit()
        return redirect(url_for("console.applications_list", verified=registered.id))
    except CanvasError as error:
        session.rollback()
        registered = applications.get_registered(session, acting_account_id(), registered_id)  # faulted now
        return _credentials_page(spec, registered, _stored_values(spec, registered), registered.tag_text,
                                 _form_errors(spec, error))


def _credentials_page(spec: ApplicationSpec, registered, shown: dict[str, str], tag_text: str,  # noqa: ANN001
                      errors: dict[str, str]):  # noqa: ANN202
    return render_page("application_credentials.html", status=400 if errors else 200, application=spec,
                       registered=_registered_entry(registered, spec), fields=_form_fields(spec, shown),
                       tag_text=tag_text, errors=errors, clear_suffix=CLEAR_SUFFIX, check_note=_check_note(spec))


def _update(spec: ApplicationSpec, registered_id: uuid.UUID, credentials: dict | None, tag_text: str) -> None:
    """UpdateRegApplication's body from the form, through its schema and its service: new credentials merged with
    the stored ones and verified before they are kept; none (unchanged): only the tag."""
    session = db_session()
    body = {"id": str(registered_id), TAG_FIELD: tag_text or None,
            "credentialsJson": json.dumps(credentials) if credentials is not None else None}
    data = _loaded(UpdateRegApplicationSchema(), body)
    applications.update_registered(session, services().application_catalog, services().secret_box,
                                   applications.Verifier.of(services()), acting_account_id(), data)
    session.commit()


def _credentials_update(spec: ApplicationSpec, form: MultiDict, stored: dict[str, str]) -> dict | None:
    """A partial credentialsJson for merge_credentials, or None when the form sends the stored credentials back
    unchanged (a new tag alone is not held up by a verification; "Check the stored credentials" re-verifies).
    A secret field left empty keeps the stored secret (absent from the update: the form never shows it, so empty
    cannot mean "remove"); its "remove" box clears an optional one (null); any other field left empty is cleared
    (null), as the form showed its stored value."""
    update = {}
    for field in spec.credential_fields:
        value = _submitted(field, form)
        if field.is_secret and form.get(field.short_name + CLEAR_SUFFIX) and field.optional:
            update[field.short_name] = None
        elif field.is_secret and value == "":
            continue
        else:
            update[field.short_name] = None if value == "" else value
    return None if _same_as_stored(spec, update, stored) else update


def _same_as_stored(spec: ApplicationSpec, update: dict, stored: dict[str, str]) -> bool:
    """No secret typed or removed, and every other field as the form showed it (an unticked box as an unset flag)."""
    def comparable(field: CredentialField, text: str) -> str:
        return "" if field.type == "bool" and text == "false" else text

    return all(field.short_name not in update if field.is_secret else
               comparable(field, _as_text(update.get(field.short_name))) ==
               comparable(field, stored.get(field.short_name, ""))
               for field in spec.credential_fields)


def _stored_values(spec: ApplicationSpec, registered) -> dict[str, str]:  # noqa: ANN001
    """The stored credentials the update form may show: secrets masked, then left out altogether."""
    stored = mask_credentials(spec, applications.decrypt_credentials(services().secret_box, registered))
    return {field.short_name: _as_text(stored.get(field.short_name)) for field in spec.credential_fields
            if not field.is_secret}


# --- the generated form ----------------------------------------------------------------------------------------------

def _submitted(field: CredentialField, form: MultiDict):  # noqa: ANN202 - str or bool
    """A field's value as the form sends it: a checkbox is true when ticked and false otherwise."""
    if field.type == "bool":
        return form.get(field.short_name) == "true"
    return form.get(field.short_name, "")


def _typed_values(spec: ApplicationSpec, form: MultiDict) -> dict[str, str]:
    """What the user typed, to show again after a refusal: every field but the secrets."""
    return {field.short_name: _as_text(_submitted(field, form)) for field in spec.credential_fields
            if not field.is_secret}


def _default_values(spec: ApplicationSpec) -> dict[str, str]:
    return {field.short_name: field.value for field in spec.credential_fields if not field.is_secret}


def _as_text(value) -> str:  # noqa: ANN001
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _form_fields(spec: ApplicationSpec, values: dict[str, str]) -> list[FormField]:
    """One input per credential field, in the catalog's order; `values` never holds a secret."""
    return [FormField(key=field.short_name, label=field.name, control=_control(field), description=field.desc,
                      optional=field.optional, secret=field.is_secret,
                      value="" if field.is_secret else values.get(field.short_name, ""),
                      options=tuple(parse_options(field.options)) if field.type == "select" and field.options
                      else ())
            for field in spec.credential_fields]


def _control(field: CredentialField) -> str:
    if field.type == "textarea":
        return "textarea"
    if field.is_secret:
        return "password"
    return {"bool": "checkbox", "select": "select", "number": "number"}.get(field.type, "text")


def _form_errors(spec: ApplicationSpec, error: CanvasError) -> dict[str, str]:
    """field_errors, with each line of a credentials message that is about one field (the validation's "<Name> must
    ..." and "You must enter a value for <Name>.") moved beside that field's input under "credentialsJson.<key>";
    the other lines (a failed verification) stay with the whole credentials fieldset."""
    errors = field_errors(error)
    message = errors.pop(CREDENTIALS_FIELD, None)
    if message is None:
        return errors
    unplaced = []
    for line in message.removeprefix(AUTHENTICATION_ERROR).splitlines():
        field = _field_a_line_is_about(spec, line)
        if field is None:
            unplaced.append(line)
        else:
            key = f"{CREDENTIALS_FIELD}.{field.short_name}"
            errors[key] = f"{errors[key]} {line}" if key in errors else line
    if unplaced:
        prefix = AUTHENTICATION_ERROR if message.startswith(AUTHENTICATION_ERROR) else ""
        errors[CREDENTIALS_FIELD] = prefix + "\n".join(unplaced)
    return errors


def _field_a_line_is_about(spec: ApplicationSpec, line: str) -> CredentialField | None:
    """The field whose display name a validation line is about; the longest name wins ("API key name must ..." is
    about API key name, not API key)."""
    about = [field for field in spec.credential_fields
             if line.startswith(f"{field.name} must ") or line == f"You must enter a value for {field.name}."]
    return max(about, key=lambda field: len(field.name), default=None)


def _loaded(schema: ma.Schema, body: dict) -> dict:
    """The body loaded by the API endpoint's own schema; a refusal names its field as the API's 400 does."""
    try:
        return schema.load(body)
    except ma.ValidationError as error:
        path, message = flatten_messages(error.messages)[0]
        raise BadRequestError(f"{path}: {message}", field=path) from None
