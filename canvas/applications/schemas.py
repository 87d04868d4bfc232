"""Request and response schemas of the application endpoints."""
from __future__ import annotations

import marshmallow as ma

from canvas.applications.service import TAG_TEXT_MAX_LENGTH
from canvas.endpoint import dto
from canvas.schema_fields import CanvasSchema, Id, Int, JsonString, StrictBoolean


@dto("AddRegApplicationApiDto")
class AddRegApplicationSchema(CanvasSchema):
    applicationId = Id(required=True)
    tagText = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=TAG_TEXT_MAX_LENGTH))
    credentialsJson = JsonString(required=True)


@dto("UpdateRegApplicationApiDto")
class UpdateRegApplicationSchema(CanvasSchema):
    id = Id(required=True)
    tagText = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=TAG_TEXT_MAX_LENGTH))
    credentialsJson = JsonString(allow_none=True)


@dto("RegApplicationIdApiDto")
class RegApplicationIdSchema(CanvasSchema):
    id = Id(required=True)


class OptionalIdArgsSchema(CanvasSchema):
    id = Id(metadata={"description": "The id, when it is not given in the path"})


@dto("RegApplicationGrantsApiDto")
class RegApplicationGrantsSchema(CanvasSchema):
    id = Id(required=True)
    restricted = StrictBoolean(required=True)
    workflowIds = ma.fields.List(Id(), load_default=list, validate=ma.validate.Length(max=1000))


class CredentialFieldSchema(CanvasSchema):
    ShortName = ma.fields.String()
    Name = ma.fields.String()
    Type = ma.fields.String()
    Value = ma.fields.String()
    Options = ma.fields.String()
    Optional = StrictBoolean()
    Desc = ma.fields.String()
    Hidden = StrictBoolean()


class ApplicationSchema(CanvasSchema):
    id = Id()
    name = ma.fields.String()
    shortName = ma.fields.String()
    description = ma.fields.String()
    vendorUrl = ma.fields.String()
    credentialFields = ma.fields.List(ma.fields.Nested(CredentialFieldSchema))
    credentialsJson = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Raw(allow_none=True))
    tag = ma.fields.String()
    sessionTimeMins = Int()
    sessionSlidingExpiry = StrictBoolean()


class RegApplicationSchema(CanvasSchema):
    id = Id()
    shortName = ma.fields.String()
    accountId = Id()
    applicationId = Id()
    name = ma.fields.String()
    tagText = ma.fields.String()
    description = ma.fields.String()
    isAuthenticated = StrictBoolean()
    isOAuthApp = StrictBoolean()
    dateModified = ma.fields.DateTime()
    dateTimeUtcAuthenticated = ma.fields.DateTime(allow_none=True)
    dateTimeForReAuth = ma.fields.DateTime(allow_none=True)
    sessionTimeMins = Int()
    sessionSlidingExpiry = StrictBoolean()
    faulted = StrictBoolean()


class RegApplicationGrantsAnswerSchema(CanvasSchema):
    id = Id()
    restricted = StrictBoolean()
    workflowIds = ma.fields.List(Id())
