"""Accounts, Account (POST), account activation, and the key and IP-allowlist extensions."""
from __future__ import annotations

from flask import jsonify
from flask.views import MethodView

from canvas.accounts import service
from canvas.accounts.schemas import (
    AccountKeysSchema,
    AccountSchema,
    ActivationArgsSchema,
    AddAccountSchema,
    IpAllowlistSchema,
    IssuedKeysSchema,
    account_to_api,
)
from canvas.auth import account_managers, admins, current_principal
from canvas.endpoint import canvas_endpoint
from canvas.extensions import db_session, services
from canvas.models import Organization
from canvas.openapi import may_answer
from canvas.openapi_schemas import GUID_ANSWER, TEXT_ANSWER, TOTAL_COUNT_HEADER, TRUE_ANSWER
from canvas.web import Blueprint
from canvas.workflows.schemas import PageArgsSchema

blp = Blueprint("accounts", __name__, url_prefix="/api", description="Organization administration")


@blp.route("/Authenticate")
class Authenticate(MethodView):
    @canvas_endpoint("Authenticate", returns="boolean")
    @blp.response(200, TRUE_ANSWER)
    def get(self):
        """Checks authentification"""
        return jsonify(True)


@blp.route("/Accounts")
class Accounts(MethodView):
    @canvas_endpoint("Accounts", returns="JSON array")
    @blp.arguments(PageArgsSchema, location="query")
    @blp.response(200, AccountSchema(many=True), headers=TOTAL_COUNT_HEADER)
    def get(self, args):
        """Returns list of accounts in the organization"""
        accounts, total = service.list_active_accounts(db_session(), current_principal().organization_id, args)
        return [account_to_api(account) for account in accounts], 200, {"X-Total-Count": str(total)}


@blp.route("/Account")
class AccountRegistration(MethodView):
    @canvas_endpoint("Account", parameters="[FromBody]AddAccountApiDto data",  # returns "": as the document says
                     role=account_managers("create accounts"))
    @blp.arguments(AddAccountSchema)
    @may_answer(409, 503)  # the e-mail is taken; SMTP is down
    @blp.response(200, GUID_ANSWER)
    def post(self, data):
        """Account registration"""
        principal = current_principal()
        session = db_session()
        account = service.create_account(session, principal.organization_id, data)
        if not account.active:
            service.send_activation(session, services().settings, account)
        session.commit()
        return jsonify(str(account.id))


@blp.route("/ActivateAccount")
class ActivateAccount(MethodView):
    @canvas_endpoint("ActivateAccount", authenticate=False, parameters="String token", returns="string",
                     extension=True)
    @blp.arguments(ActivationArgsSchema, location="query")
    @may_answer(503)
    @blp.response(200, TEXT_ANSWER)
    def get(self, args):
        """Activates an account through the single-use link of its activation e-mail"""
        session = db_session()
        service.activate_account(session, args["token"])
        session.commit()
        return jsonify("Account activated")


@blp.route("/AccountKeys")
class AccountKeys(MethodView):
    @may_answer(404)  # no such account
    @canvas_endpoint("AccountKeys", parameters="[FromBody]AccountKeysApiDto data", returns="JSON", extension=True,
                     role=account_managers("issue API keys"))
    @blp.arguments(AccountKeysSchema)
    @blp.response(200, IssuedKeysSchema)
    def post(self, data):
        """Issues new API keys for an account of the organization; its old keys stop working at once"""
        principal = current_principal()
        session = db_session()
        keys = service.issue_keys_for(session, principal.organization_id, principal.key_role, data["accountId"])
        session.commit()
        return {"accountId": keys.account_id, "consumer": keys.consumer, "secretKey": keys.secret_key}


@blp.route("/IpAllowlist")
class IpAllowlist(MethodView):
    @canvas_endpoint("IpAllowlist", returns="JSON", extension=True)
    @blp.response(200, IpAllowlistSchema)
    def get(self):
        """Returns the organization's IP allowlist (an empty list allows any address)"""
        organization = db_session().get(Organization, current_principal().organization_id)
        return {"cidrs": organization.ip_allowlist or []}

    @canvas_endpoint("IpAllowlist", parameters="[FromBody]IpAllowlistApiDto data", returns="JSON", extension=True,
                     role=admins("change the IP allowlist"))
    @blp.arguments(IpAllowlistSchema)
    @blp.response(200, IpAllowlistSchema)
    def post(self, data):
        """Replaces the organization's IP allowlist (Admin only)"""
        principal = current_principal()
        session = db_session()
        cidrs = service.set_ip_allowlist(session, principal.organization_id, data["cidrs"])
        session.commit()
        return {"cidrs": cidrs}
