"""Schemas of the workflow template endpoints."""
from __future__ import annotations

import marshmallow as ma

from canvas.endpoint import dto
from canvas.execution.graph import FAILURE_POLICIES
from canvas.schema_fields import CanvasSchema, Id, StrictBoolean

FAILURE_POLICY_DESCRIPTION = ("what a run does when a block fails: failFast (default) starts no further block, "
                              "continue runs every block that does not depend on a failed one")


class BlockInputSchema(CanvasSchema):
    fromBlock = ma.fields.Integer(metadata={"description": "the number of the block whose output comes in"})
    inputMapper = ma.fields.String(metadata={"description": "JSONata applied to each record on the way in"})
    inputCondition = ma.fields.String(metadata={"description": "JSONata; only records for which it holds come in"})


def block_inputs_field() -> ma.fields.List:
    """A graph's block: its parents (the answers of the Canvas dialect); absent on a plain chain's blocks."""
    return ma.fields.List(ma.fields.Nested(BlockInputSchema), metadata={
        "description": "only on a graph's blocks: the blocks whose outputs feed this one ([]: it starts the graph); "
                       "a block without inputs is fed by the block before it"})


class TemplateChainEntrySchema(CanvasSchema):
    uniqueBlockId = Id()
    blockName = ma.fields.String()
    variables = ma.fields.Dict()
    inputs = block_inputs_field()


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
    failurePolicy = ma.fields.String(validate=ma.validate.OneOf(FAILURE_POLICIES), metadata={
        "description": "only on a template that sets one: " + FAILURE_POLICY_DESCRIPTION})


@dto("TemplateBlockInputApiDto")
class TemplateBlockInputSchema(CanvasSchema):
    from_ = Id(required=True, data_key="from", attribute="from",
               metadata={"description": "the uniqueBlockId of the block whose output comes in"})
    inputMapper = ma.fields.String(allow_none=True, validate=ma.validate.Length(min=1, max=20000),
                                   metadata={"description": "JSONata applied to each record on the way in"})
    inputCondition = ma.fields.String(allow_none=True, validate=ma.validate.Length(min=1, max=20000),
                                      metadata={"description": "JSONata; only records for which it holds come in"})


@dto("TemplateBlockApiDto")
class TemplateBlockSchema(CanvasSchema):
    uniqueBlockId = Id(required=True)
    blockName = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=200))
    block = ma.fields.String(required=True, metadata={"description": "block implementation key, see BlockTypes"})
    application = ma.fields.String(allow_none=True)
    variables = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Raw(allow_none=True), load_default=dict)
    inputs = ma.fields.List(ma.fields.Nested(TemplateBlockInputSchema), allow_none=True,
                            validate=ma.validate.Length(max=200), metadata={
                                "description": "makes the chain a graph: the blocks whose outputs feed this one "
                                               "([]: it starts the graph); without it a block is fed by the block "
                                               "before it. A graph is stored in topological order"})


def _template_body_fields(required: bool) -> dict:
    return {
        "name": ma.fields.String(required=required, validate=ma.validate.Length(min=1, max=200)),
        "description": ma.fields.String(allow_none=True, validate=ma.validate.Length(max=4000)),
        "applications": ma.fields.List(ma.fields.String(), required=required),
        "chain": ma.fields.List(ma.fields.Nested(TemplateBlockSchema), required=required,
                                validate=ma.validate.Length(min=1, max=200)),
        "failurePolicy": ma.fields.String(allow_none=True, validate=ma.validate.OneOf(FAILURE_POLICIES),
                                          metadata={"description": FAILURE_POLICY_DESCRIPTION}),
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
