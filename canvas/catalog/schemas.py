"""Schemas of the workflow template endpoints."""
from __future__ import annotations

import marshmallow as ma

from canvas.endpoint import dto



class TemplateChainEntrySchema(ma.Schema):
    uniqueBlockId = ma.fields.UUID()
    blockName = ma.fields.String()
    variables = ma.fields.Dict()


class WorkflowTemplateSchema(ma.Schema):
    id = ma.fields.UUID()
    name = ma.fields.String()
    description = ma.fields.String()
    dateCreated = ma.fields.DateTime()
    dateModified = ma.fields.DateTime()
    state = ma.fields.String()
    version = ma.fields.String(allow_none=True)
    draftIsCommitted = ma.fields.Boolean(allow_none=True)
    dateCommitted = ma.fields.DateTime(allow_none=True)
    organizationId = ma.fields.UUID(allow_none=True)
    applications = ma.fields.List(ma.fields.String())
    chain = ma.fields.List(ma.fields.Nested(TemplateChainEntrySchema))


@dto("TemplateBlockApiDto")
class TemplateBlockSchema(ma.Schema):
    uniqueBlockId = ma.fields.UUID(required=True)
    blockName = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=200))
    block = ma.fields.String(required=True, metadata={"description": "block implementation key, see BlockTypes"})
    application = ma.fields.String(allow_none=True)
    variables = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Raw(allow_none=True), load_default=dict)


def _template_body_fields(required: bool) -> dict:
    return {
        "name": ma.fields.String(required=required, validate=ma.validate.Length(min=1, max=200)),
        "description": ma.fields.String(allow_none=True, validate=ma.validate.Length(max=4000)),
        "applications": ma.fields.List(ma.fields.String(), required=required),
        "chain": ma.fields.List(ma.fields.Nested(TemplateBlockSchema), required=required,
                                validate=ma.validate.Length(min=1, max=200)),
    }


AddWorkflowTemplateSchema = dto("AddWorkflowTemplateApiDto")(
    ma.Schema.from_dict(_template_body_fields(True), name="AddWorkflowTemplateSchema"))
UpdateWorkflowTemplateSchema = dto("UpdateWorkflowTemplateApiDto")(
    ma.Schema.from_dict({"id": ma.fields.UUID(required=True), **_template_body_fields(False)},
                        name="UpdateWorkflowTemplateSchema"))


@dto("PublishWorkflowTemplateApiDto")
class PublishWorkflowTemplateSchema(ma.Schema):
    id = ma.fields.UUID(required=True)
    version = ma.fields.String(allow_none=True, validate=ma.validate.Regexp(r"^\d+\.\d+\.\d+$",
                                                                            error="must look like 1.2.3"))


class TemplateVersionSchema(ma.Schema):
    version = ma.fields.String()
    name = ma.fields.String()
    dateCreated = ma.fields.DateTime()
    contentHash = ma.fields.String()


class BlockTypeSchema(ma.Schema):
    key = ma.fields.String()
    title = ma.fields.String()
    applicationKind = ma.fields.String(allow_none=True)
    sideEffects = ma.fields.Boolean()
    variables = ma.fields.Dict()
