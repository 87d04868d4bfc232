"""Request and response schemas of the application endpoints."""
from __future__ import annotations

import marshmallow as ma

from canvas.endpoint import dto
from canvas.schema_fields import JsonString


@dto("AddRegApplicationApiDto")
class AddRegApplicationSchema(ma.Schema):
    applicationId = ma.fields.UUID(required=True)
    tagText = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=200))
    credentialsJson = JsonString(required=True)


@dto("UpdateRegApplicationApiDto")
class UpdateRegApplicationSchema(ma.Schema):
    id = ma.fields.UUID(required=True)
    tagText = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=200))
    credentialsJson = JsonString(allow_none=True)


@dto("RegApplicationIdApiDto")
class RegApplicationIdSchema(ma.Schema):
    id = ma.fields.UUID(required=True)


class OptionalIdArgsSchema(ma.Schema):
    id = ma.fields.String(metadata={"description": "The id, when it is not given in the path"})


@dto("RegApplicationGrantsApiDto")
class RegApplicationGrantsSchema(ma.Schema):
    id = ma.fields.UUID(required=True)
    restricted = ma.fields.Boolean(required=True)
    workflowIds = ma.fields.List(ma.fields.UUID(), load_default=list, validate=ma.validate.Length(max=1000))


class CredentialFieldSchema(ma.Schema):
    ShortName = ma.fields.String()
    Name = ma.fields.String()
    Type = ma.fields.String()
    Value = ma.fields.String()
    Options = ma.fields.String()
    Optional = ma.fields.Boolean()
    Desc = ma.fields.String()
    Hidden = ma.fields.Boolean()


class ApplicationSchema(ma.Schema):
    id = ma.fields.UUID()
    name = ma.fields.String()
    shortName = ma.fields.String()
    description = ma.fields.String()
    vendorUrl = ma.fields.String()
    credentialFields = ma.fields.List(ma.fields.Nested(CredentialFieldSchema))
    credentialsJson = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Raw(allow_none=True))
    tag = ma.fields.String()
    sessionTimeMins = ma.fields.Integer()
    sessionSlidingExpiry = ma.fields.Boolean()


class RegApplicationSchema(ma.Schema):
    id = ma.fields.UUID()
    shortName = ma.fields.String()
    accountId = ma.fields.UUID()
    applicationId = ma.fields.UUID()
    name = ma.fields.String()
    tagText = ma.fields.String()
    description = ma.fields.String()
    isAuthenticated = ma.fields.Boolean()
    isOAuthApp = ma.fields.Boolean()
    dateModified = ma.fields.DateTime()
    dateTimeUtcAuthenticated = ma.fields.DateTime(allow_none=True)
    dateTimeForReAuth = ma.fields.DateTime(allow_none=True)
    sessionTimeMins = ma.fields.Integer()
    sessionSlidingExpiry = ma.fields.Boolean()
    faulted = ma.fields.Boolean()


class RegApplicationGrantsAnswerSchema(ma.Schema):
    id = ma.fields.UUID()
    restricted = ma.fields.Boolean()
    workflowIds = ma.fields.List(ma.fields.UUID())
