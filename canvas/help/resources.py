"""GetMetaData and Describe."""
from __future__ import annotations

import marshmallow as ma
from flask import current_app, jsonify
from flask.views import MethodView

from canvas.endpoint import canvas_endpoint
from canvas.help import service
from canvas.openapi import may_answer
from canvas.openapi_schemas import DESCRIBE_ANSWER, ENDPOINT_LIST_ANSWER
from canvas.schema_fields import CanvasSchema
from canvas.web import Blueprint

blp = Blueprint("help", __name__, url_prefix="/api", description="APIs that describe the API")


class DescribeArgsSchema(CanvasSchema):
    name = ma.fields.String(required=True, metadata={"description": "A DTO name, e.g. AddWorkflowApiDto"})


@blp.route("/GetMetaData")
class GetMetaData(MethodView):
    @canvas_endpoint("GetMetaData", authenticate=False, returns="JSON array")
    @blp.response(200, ENDPOINT_LIST_ANSWER)
    def get(self):
        """Returns controllers actions"""
        return jsonify(service.endpoint_catalog(current_app))


@blp.route("/Describe")
class Describe(MethodView):
    @canvas_endpoint("Describe", authenticate=False, parameters="String name")  # returns "": as the document says
    @blp.arguments(DescribeArgsSchema, location="query")
    @may_answer(404)
    @blp.response(200, DESCRIBE_ANSWER)
    def get(self, args):
        """Describes object properties"""
        return jsonify(service.describe(args["name"]))
