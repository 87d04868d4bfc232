"""Schemas of the workflow template endpoints."""
from __future__ import annotations

import marshmallow as ma

from canvas.endpoint import dto
from canvas.schema_fields import CanvasSchema, Id, StrictBoolean


class TemplateChainEntrySchema(CanvasSchema):
    uniqueBlockId = Id()
    blockName = ma.fields.String()
    variables = ma.fields.Dict()


class WorkflowTemplateSchema(CanvasSchema):
    id = Id()
    name = ma.fields.String()
    description = ma.fields.String()
    dateCreated = ma.fields.DateTime()
    dateModified = ma.fields.DateTime()
    state = ma.fields.String()
    version = ma.fields.String(allow_none=True)
    draftIsCommitted = StrictBoolean(allow_none=True)
    dateCommitted = ma.fields.DateTime(allow_none=True)
    organizationId = Id(allow_none=True)
    applications = ma.fields.List(ma.fields.String())
    chain = ma.fields.List(ma.fields.Nested(TemplateChainEntrySchema))


@dto("TemplateBlockApiDto")
class TemplateBlockSchema(CanvasSchema):
    uniqueBlockId = Id(required=True)
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
    CanvasSchema.from_dict(_template_body_fields(True), name="AddWorkflowTemplateSchema"))
UpdateWorkflowTemplateSchema = dto("UpdateWorkflowTemplateApiDto")(
    CanvasSchema.from_dict({"id": Id(required=True), **_template_body_fields(False)},
                        name="UpdateWorkflowTemplateSchema"))


@dto("PublishWorkflowTemplateApiDto")
class PublishWorkflowTemplateSchema(CanvasSchema):
    id = Id(required=True)
    version = ma.fields.String(allow_none=True, validate=ma.validate.Regexp(r"^\d+\.\d+\.\d+$",
                                                                            error="must look like 1.2.3"))


class TemplateVersionSchema(CanvasSchema):
    version = ma.fields.String()
    name = ma.fields.String()
    dateCreated = ma.fields.DateTime()
    contentHash = ma.fields.String()


class BlockTypeSchema(CanvasSchema):
    key = ma.fields.String()
    title = ma.fields.String()
    applicationKind = ma.fields.String(allow_none=True)
    sideEffects = StrictBoolean()
    variables = ma.fields.Dict()
