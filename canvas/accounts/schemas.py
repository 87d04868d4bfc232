"""Request and response schemas of the account endpoints."""
from __future__ import annotations

import marshmallow as ma

from canvas.accounts.service import EMAIL_MAX_LENGTH
from canvas.endpoint import dto
from canvas.schema_fields import CanvasSchema, Id, StrictBoolean


@dto("AddAccountApiDto")
class AddAccountSchema(CanvasSchema):
    firstName = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=200))
    lastName = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=200))
    email = ma.fields.String(required=True, validate=ma.validate.Length(min=3, max=EMAIL_MAX_LENGTH))
    phone = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=50))
    roleName = ma.fields.String(allow_none=True)
    countryKey = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=8))
    globalNotifications = StrictBoolean(allow_none=True)
    defaultNotificationEmail = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=320))
    activated = StrictBoolean(allow_none=True)


class AccountSchema(CanvasSchema):
    id = Id()
    firstName = ma.fields.String()
    lastName = ma.fields.String()
    email = ma.fields.String()
    organizationId = Id()
    organizationName = ma.fields.String()
    roleId = Id()
    role = ma.fields.String()
    dateCreated = ma.fields.DateTime()


class ActivationArgsSchema(CanvasSchema):
    token = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=200))


@dto("AccountKeysApiDto")
class AccountKeysSchema(CanvasSchema):
    accountId = Id(required=True)


class IssuedKeysSchema(CanvasSchema):
    accountId = Id()
    consumer = ma.fields.String()
    secretKey = ma.fields.String()


@dto("IpAllowlistApiDto")
class IpAllowlistSchema(CanvasSchema):
    cidrs = ma.fields.List(ma.fields.String(validate=ma.validate.Length(max=64)), required=True,
                           validate=ma.validate.Length(max=500))


def account_to_api(account) -> dict:  # noqa: ANN001 - models.Account
    return {
        "id": account.id,
        "firstName": account.first_name,
        "lastName": account.last_name,
        "email": account.email,
        "organizationId": account.organization_id,
        "organizationName": account.organization.name,
        "roleId": account.role_enum.role_id,
        "role": account.role_enum.value,
        "dateCreated": account.date_created,
    }
