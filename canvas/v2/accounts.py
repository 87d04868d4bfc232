"""/v2/users/me (who calls) and /v2/api-keys (a further API key for the caller's account)."""
from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from canvas.auth import current_principal
from canvas.extensions import db_session
from canvas.models import Account
from canvas.v2 import jsonapi
from canvas.v2.auth import add_api_key
from canvas.v2.schemas import doc

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


@blp.route("/api-keys")
class ApiKeys(MethodView):
    @blp.doc(**doc(201, "A new API key; its secret is shown only in this answer"))
    def post(self):
        """Create a further API key for the calling account (Basic password, and Canvas SecretKey)"""
        session = db_session()
        key, secret = add_api_key(session, current_principal().key_account_id)
        session.commit()
        attributes = {"consumer": key.consumer, "secret_key": secret, "created_at": jsonapi.iso_time(key.date_created)}
        return jsonapi.document(jsonapi.resource("api-key", key.id, attributes, self_link="/v2/api-keys"),
                                status=201)
