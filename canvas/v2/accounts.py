"""/v2/users/me (who calls), /v2/users/{id}, /v2/workspaces/{id} (the caller's organization) and /v2/api-keys (a
further API key for the caller's account)."""
from __future__ import annotations

from flask.views import MethodView

from canvas.auth import current_principal
from canvas.errors import NotFoundError
from canvas.extensions import db_session
from canvas.models import Account, ApiKey, Organization
from canvas.v2 import jsonapi
from canvas.v2.auth import add_api_key
from canvas.v2.flow_service import as_id
from canvas.v2.schemas import doc
from canvas.web import Blueprint

blp = Blueprint("v2_accounts", __name__, url_prefix="/v2", description="v2 (JSON:API): the caller and its API keys")


def user_to_resource(account: Account) -> dict:
    attributes = {"first_name": account.first_name, "last_name": account.last_name, "email": account.email,
                  "company": account.organization.name, "role": account.role,
                  "registered": jsonapi.iso_time(account.date_created)}
    relationships = {"workspace": jsonapi.to_one("workspace", account.organization_id)}
    return jsonapi.resource("user", account.id, attributes, self_link=f"/v2/users/{account.id}",
                            relationships=relationships)


@blp.route("/users/me")
class Me(MethodView):
    @blp.doc(**doc(200, "The calling user"))
    def get(self):
        """Who am I (the acting account)"""
        return jsonapi.document(user_to_resource(db_session().get(Account, current_principal().account_id)))


@blp.route("/users/<user_id>")
class UserById(MethodView):
    @blp.doc(**doc(200, "A user of the caller's workspace (a User sees only itself)"))
    def get(self, user_id):
        """Get a user: the caller, or for an Admin or SuperPartner, any user of its workspace"""
        principal = current_principal()
        account = db_session().get(Account, as_id(user_id, "user"))
        visible = account is not None and account.organization_id == principal.organization_id and (
            account.id in (principal.account_id, principal.key_account_id) or principal.key_role.may_manage_accounts)
        if not visible:
            raise NotFoundError(f"Unknown user {user_id}")
        return jsonapi.document(user_to_resource(account))


@blp.route("/workspaces/<workspace_id>")
class WorkspaceById(MethodView):
    @blp.doc(**doc(200, "The caller's workspace (its organization)"))
    def get(self, workspace_id):
        """Get the caller's workspace"""
        principal = current_principal()
        if as_id(workspace_id, "workspace") != principal.organization_id:
            raise NotFoundError(f"Unknown workspace {workspace_id}")
        organization = db_session().get(Organization, principal.organization_id)
        attributes = {"name": organization.name, "created_at": jsonapi.iso_time(organization.date_created)}
        return jsonapi.document(jsonapi.resource("workspace", organization.id, attributes,
                                                 self_link=f"/v2/workspaces/{organization.id}"))


def api_key_to_resource(key: ApiKey, secret: str | None = None) -> dict:
    attributes = {"consumer": key.consumer, "created_at": jsonapi.iso_time(key.date_created)}
    if secret is not None:
        attributes["secret_key"] = secret  # shown once
    return jsonapi.resource("api-key", key.id, attributes, self_link=f"/v2/api-keys/{key.id}")


@blp.route("/api-keys/<key_id>")
class ApiKeyById(MethodView):
    @blp.doc(**doc(200, "One of the caller's API keys (its secret is never shown again)"))
    def get(self, key_id):
        """Get one of the calling account's API keys"""
        key = db_session().get(ApiKey, as_id(key_id, "api-key"))
        if key is None or key.account_id != current_principal().key_account_id:
            raise NotFoundError(f"Unknown API key {key_id}")
        return jsonapi.document(api_key_to_resource(key))


@blp.route("/api-keys")
class ApiKeys(MethodView):
    @blp.doc(**doc(201, "A new API key; its secret is shown only in this answer"))
    def post(self):
        """Create a further API key for the calling account (Basic password, and Canvas SecretKey)"""
        session = db_session()
        key, secret = add_api_key(session, current_principal().key_account_id)
        session.commit()
        return jsonapi.document(api_key_to_resource(key, secret), status=201)
