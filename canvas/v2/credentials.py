"""/v2/credentials: the registered applications, as JSON:API `credential` resources. `keys` are the credentials,
always masked in answers; `relationships.component` is the catalog application."""
from __future__ import annotations

import json
from contextlib import contextmanager

from flask.views import MethodView

from canvas.applications import service
from canvas.applications.credentials import mask_credentials
from canvas.auth import current_principal
from canvas.errors import BadRequestError, CanvasError
from canvas.extensions import db_session, services
from canvas.openapi import may_answer
from canvas.v2 import jsonapi
from canvas.v2.schemas import PAGE_PARAMETERS, WORKSPACE_PARAMETER, doc, query
from canvas.v2.visibility import check_workspace
from canvas.web import Blueprint

blp = Blueprint("v2_credentials", __name__, url_prefix="/v2", description="v2 (JSON:API): credentials")
FIELD_NAMES = {"credentialsJson": "keys", "tagText": "name", "applicationId": "component"}


def credential_to_resource(registered) -> dict:  # noqa: ANN001
    spec = services().application_catalog.get(registered.application_id)
    keys = service.decrypt_credentials(services().secret_box, registered)
    attributes = {"name": registered.tag_text, "keys": mask_credentials(spec, keys) if spec else {},
                  "application": registered.short_name,
                  "is_authenticated": service.shown_authenticated(registered, spec),
                  "faulted": registered.faulted, "updated_at": jsonapi.iso_time(registered.date_modified)}
    relationships = {
        "user": jsonapi.to_one("user", registered.account_id, f"/v2/users/{registered.account_id}"),
        "component": jsonapi.to_one("component", registered.application_id),
    }
    return jsonapi.resource("credential", registered.id, attributes, self_link=f"/v2/credentials/{registered.id}",
                            relationships=relationships)


@contextmanager
def v2_field_names():
    """The application services name Canvas fields (credentialsJson...); v2 callers sent keys, name, component."""
    try:
        yield
    except CanvasError as error:
        if error.field:
            head, dot, rest = error.field.partition(".")
            error.field = FIELD_NAMES.get(head, head) + dot + rest
        raise


# The seed's credentials name a server `host` (and sometimes `hostname`, `user`); the catalog's applications name
# it `address` or `server`. A key the application does not know is read as the first synonym it does know.
KEY_SYNONYMS = {"host": ("address", "server"), "hostname": ("address", "host", "server"),
                "address": ("host", "server"), "server": ("host", "address"), "user": ("username",),
                "login": ("username",)}


def keys_attribute(attributes: dict, required: bool, application_id: str | None = None) -> dict | None:
    keys = attributes.get("keys")
    if keys is None and not required:
        return None
    if not isinstance(keys, dict):
        raise BadRequestError("keys must be an object of credential values", field="keys")
    spec = services().application_catalog.get(application_id) if application_id else None
    return {_catalog_name(spec, name): value for name, value in keys.items()} if spec else dict(keys)


def _catalog_name(spec, name: str) -> str:  # noqa: ANN001 - ApplicationSpec
    known = set(spec.field_names)
    if name in known:
        return name
    return next((synonym for synonym in KEY_SYNONYMS.get(name, ()) if synonym in known), name)


def replacing(stored: dict, keys: dict) -> dict:
    """PATCH replaces `keys` entirely (the seed): a stored key the new object leaves out is cleared. A secret sent
    back as the mask keeps its stored value, as clients send back what they read."""
    return {**{name: None for name in stored if name not in keys}, **keys}


def component_id(data: dict) -> str:
    relationships = data.get("relationships")
    component = relationships.get("component") if isinstance(relationships, dict) else None
    related = component.get("data") if isinstance(component, dict) else None
    if not isinstance(related, dict) or not isinstance(related.get("id"), str) or not related["id"]:
        raise BadRequestError("relationships.component.data.id (the application id) is required", field="component")
    return str(related["id"])


@blp.route("/credentials")
class Credentials(MethodView):
    @blp.doc(**doc(200, "The account's credentials (keys masked)",
                   parameters=PAGE_PARAMETERS + [query("filter[component]", "application id"), WORKSPACE_PARAMETER]))
    @may_answer(404)  # a workspace_id other than the caller's
    def get(self):
        """List credentials"""
        check_workspace()
        page = jsonapi.page_parameters()
        component = jsonapi.uuid_parameter("filter[component]")
        rows, total = service.slice_of_registered(db_session(), current_principal().account_id, page.offset,
                                                  page.size, application_id=component)
        return jsonapi.document([credential_to_resource(row) for row in rows],
                                meta=jsonapi.page_meta(page, total), links=jsonapi.page_links(page, total))

    @blp.doc(**doc(201, "The created credential (keys masked)", 409, 415,
                   request_body="attributes.name, attributes.keys; relationships.component"))
    def post(self):
        """Create a credential: keys are verified, then stored encrypted"""
        data = jsonapi.request_data("credential", creates=True)
        attributes = jsonapi.attributes_of(data)
        session = db_session()
        with v2_field_names():
            registered = service.register_application(
                session, services().application_catalog, services().secret_box, service.Verifier.of(services()),
                current_principal().account_id,
                {"applicationId": component_id(data),
                 "credentialsJson": json.dumps(keys_attribute(attributes, True, component_id(data))),
                 "tagText": attributes.get("name") if isinstance(attributes.get("name"), str) else None})
        session.commit()
        return jsonapi.document(credential_to_resource(registered), status=201,
                                headers={"Location": f"/v2/credentials/{registered.id}"})


@blp.route("/credentials/<credential_id>")
class CredentialById(MethodView):
    @blp.doc(**doc(200, "The credential (keys masked)"))
    def get(self, credential_id):
        """Get a credential"""
        with v2_field_names():
            registered = service.get_registered(db_session(), current_principal().account_id, credential_id)
        return jsonapi.document(credential_to_resource(registered))

    @blp.doc(**doc(200, "The updated credential", 409, 415, request_body="attributes.name and/or attributes.keys"))
    def patch(self, credential_id):
        """Update a credential's name or keys (keys are replaced entirely; masked values keep the stored secret)"""
        attributes = jsonapi.attributes_of(jsonapi.request_data("credential", resource_id=credential_id))
        name = attributes.get("name")
        if name is not None and not isinstance(name, str):
            raise BadRequestError("name must be a string", field="name")
        session = db_session()
        with v2_field_names():
            current = service.get_registered(session, current_principal().account_id, credential_id)
            keys = keys_attribute(attributes, False, str(current.application_id))
            if keys is not None:
                keys = replacing(service.decrypt_credentials(services().secret_box, current), keys)
            registered = service.update_registered(
                session, services().application_catalog, services().secret_box, service.Verifier.of(services()),
                current_principal().account_id,
                {"id": credential_id, "credentialsJson": None if keys is None else json.dumps(keys), "tagText": name})
        session.commit()
        return jsonapi.document(credential_to_resource(registered))

    @blp.doc(**doc(204, "Deleted", 409))
    def delete(self, credential_id):
        """Delete a credential (409 while a flow uses it)"""
        session = db_session()
        with v2_field_names():
            service.delete_registered(session, current_principal().account_id, credential_id)
        session.commit()
        return jsonapi.no_content()
