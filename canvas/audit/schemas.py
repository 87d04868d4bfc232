"""Schemas of GET AuditLog (the Canvas dialect): its query and its entries, camelCase like the rest of Canvas."""
from __future__ import annotations

from datetime import timezone

import marshmallow as ma

from canvas.models.audit import ACTOR_KINDS
from canvas.schema_fields import CanvasSchema, Id, page_number_field, page_size_field

_TEXT = ma.validate.Length(min=1, max=64)


class AuditLogArgsSchema(CanvasSchema):
    action = ma.fields.String(validate=_TEXT, metadata={"description": "e.g. workflow.update, account.keys.rotate"})
    objectType = ma.fields.String(validate=_TEXT, metadata={"description": "e.g. workflow, account, application"})
    objectId = ma.fields.String(validate=_TEXT)
    actorId = Id(metadata={"description": "the account whose keys made the change"})
    since = ma.fields.AwareDateTime(data_key="from", default_timezone=timezone.utc,
                                    metadata={"description": "ISO 8601: entries at or after this instant"})
    until = ma.fields.AwareDateTime(data_key="to", default_timezone=timezone.utc,
                                    metadata={"description": "ISO 8601: entries before this instant"})
    page = page_number_field()
    pageSize = page_size_field()


class AuditEntrySchema(CanvasSchema):
    id = Id()
    organizationId = Id(allow_none=True)
    actorId = Id(allow_none=True, metadata={"description": "the account whose keys made the change"})
    actorKind = ma.fields.String(validate=ma.validate.OneOf(ACTOR_KINDS))
    actingAsId = Id(allow_none=True, metadata={"description": "the ManagedAccountId account, when acting for one"})
    time = ma.fields.DateTime()
    action = ma.fields.String()
    objectType = ma.fields.String()
    objectId = ma.fields.String(allow_none=True)
    changes = ma.fields.Dict(metadata={"description": "field -> {before, after}; a secret reads \"(changed)\""})
    requestId = ma.fields.String(allow_none=True)
