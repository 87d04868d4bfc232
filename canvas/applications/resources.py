"""Applications, RegApplications, RegApplication, and the registered-application extensions."""
from __future__ import annotations

from flask import jsonify
from flask.views import MethodView

from canvas.applications import service
from canvas.applications.schemas import (
    AddRegApplicationSchema,
    ApplicationSchema,
    OptionalIdArgsSchema,
    RegApplicationGrantsAnswerSchema,
    RegApplicationGrantsSchema,
    RegApplicationIdSchema,
    RegApplicationSchema,
    UpdateRegApplicationSchema,
)
from canvas.auth import current_principal
from canvas.endpoint import canvas_endpoint, id_argument, route_with_optional_id
from canvas.extensions import db_session, services
from canvas.openapi import may_answer
from canvas.openapi_schemas import GUID_ANSWER, TOTAL_COUNT_HEADER, TRUE_ANSWER
from canvas.web import Blueprint
from canvas.workflows.schemas import PageArgsSchema

blp = Blueprint("applications", __name__, url_prefix="/api", description="Applications and registered applications")


def _to_api(registered) -> dict:  # noqa: ANN001
    return service.registered_to_api(registered, services().application_catalog.get(registered.application_id))


@blp.route("/Applications")
class Applications(MethodView):
    @canvas_endpoint("Applications", returns="JSON Array")
    @blp.response(200, ApplicationSchema(many=True))
    def get(self):
        """Returns Canvas applications"""
        return services().application_catalog.to_api()


@blp.route("/RegApplications")
class RegApplications(MethodView):
    @canvas_endpoint("RegApplications", returns="JSON Array")
    @blp.arguments(PageArgsSchema, location="query")
    @blp.response(200, RegApplicationSchema(many=True), headers=TOTAL_COUNT_HEADER)
    def get(self, args):
        """Returns account registerred applications"""
        rows, total = service.list_registered(db_session(), current_principal().account_id, args)
        return [_to_api(registered) for registered in rows], 200, {"X-Total-Count": str(total)}


@route_with_optional_id(blp, "/RegApplication")
class RegApplication(MethodView):
    @canvas_endpoint("RegApplication", parameters="[FromBody]AddRegApplicationApiDto regApp", returns="Guid",
                     acts_on_path_id=True)
    @blp.arguments(AddRegApplicationSchema)
    @blp.response(200, GUID_ANSWER)
    def post(self, data, path_id=None):
        """Registers a new application and returns Id"""
        session = db_session()
        arguments = (session, services().application_catalog, services().secret_box, service.Verifier.of(services()),
                     current_principal().account_id)
        if path_id is not None:  # a path that names a registered application: act on it, never register a new one
            registered = service.register_application_again(*arguments, path_id, data)
        else:
            registered = service.register_application(*arguments, data)
        session.commit()
        return jsonify(str(registered.id))

    @canvas_endpoint("RegApplication", parameters="Guid id", returns="JSON", extension=True)
    @blp.arguments(OptionalIdArgsSchema, location="query")
    @blp.response(200, RegApplicationSchema)
    @may_answer(404)
    def get(self, args, path_id=None):
        """Returns one registered application of the account (never its credentials)"""
        return _to_api(service.get_registered(db_session(), current_principal().account_id,
                                              id_argument(path_id, args)))


@blp.route("/UpdateRegApplication")
class UpdateRegApplication(MethodView):
    @canvas_endpoint("UpdateRegApplication", parameters="[FromBody]UpdateRegApplicationApiDto regApp",
                     returns="JSON", extension=True)
    @blp.arguments(UpdateRegApplicationSchema)
    @blp.response(200, RegApplicationSchema)
    @may_answer(404)
    def post(self, data):
        """Updates a registered application's tag or credentials; new credentials are verified before they are kept"""
        session = db_session()
        registered = service.update_registered(session, services().application_catalog, services().secret_box,
                                               service.Verifier.of(services()), current_principal().account_id, data)
        session.commit()
        return _to_api(registered)


@blp.route("/VerifyRegApplication")
class VerifyRegApplication(MethodView):
    @canvas_endpoint("VerifyRegApplication", parameters="[FromBody]RegApplicationIdApiDto regApp", returns="JSON",
                     extension=True)
    @blp.arguments(RegApplicationIdSchema)
    @blp.response(200, RegApplicationSchema)
    @may_answer(404)
    def post(self, data):
        """Verifies a registered application's stored credentials again; success clears faulted"""
        session = db_session()
        registered = service.reverify_registered(session, services().application_catalog, services().secret_box,
                                                 service.Verifier.of(services()), current_principal().account_id, data["id"])
        session.commit()
        return _to_api(registered)


@route_with_optional_id(blp, "/DeleteRegApplication")
class DeleteRegApplication(MethodView):
    @canvas_endpoint("DeleteRegApplication", parameters="Guid id", returns="boolean", extension=True)
    @blp.arguments(OptionalIdArgsSchema, location="query")
    @may_answer(404, 409)  # still used by a workflow
    @blp.response(200, TRUE_ANSWER)
    def get(self, args, path_id=None):
        """Deletes a registered application; refused while a workflow uses it"""
        session = db_session()
        service.delete_registered(session, current_principal().account_id, id_argument(path_id, args))
        session.commit()
        return jsonify(True)


@route_with_optional_id(blp, "/RegApplicationGrants")
class RegApplicationGrants(MethodView):
    @canvas_endpoint("RegApplicationGrants", parameters="Guid id", returns="JSON", extension=True)
    @blp.arguments(OptionalIdArgsSchema, location="query")
    @blp.response(200, RegApplicationGrantsAnswerSchema)
    @may_answer(404)
    def get(self, args, path_id=None):
        """Returns which workflows may use a registered application (restricted false: every workflow of the account)"""
        session = db_session()
        registered = service.get_registered(session, current_principal().account_id, id_argument(path_id, args))
        return _grants_answer(session, registered)

    @canvas_endpoint("RegApplicationGrants", parameters="[FromBody]RegApplicationGrantsApiDto grants",
                     returns="JSON", extension=True, acts_on_path_id=True)
    @blp.arguments(RegApplicationGrantsSchema)
    @blp.response(200, RegApplicationGrantsAnswerSchema)
    @may_answer(404)
    def post(self, data, path_id=None):
        """Restricts a registered application to the listed workflows, or lifts the restriction"""
        session = db_session()
        registered = service.set_grants(session, current_principal().account_id,
                                        service.request_id(path_id, data["id"]), data["restricted"],
                                        data["workflowIds"])
        session.commit()
        return _grants_answer(session, registered)


def _grants_answer(session, registered) -> dict:  # noqa: ANN001
    return {"id": registered.id, "restricted": registered.restricted_to_grants,
            "workflowIds": service.granted_workflow_ids(session, registered.id)}
