"""The resolved caller of a request."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

from flask import g

from canvas.endpoint import RoleRule
from canvas.errors import ForbiddenError
from canvas.models.account import Role


@dataclass(frozen=True)
class Principal:
    """`key_account_*` is whose keys were used; `account_id` is the account the call acts as (ManagedAccountId)."""

    key_account_id: uuid.UUID
    key_role: Role
    account_id: uuid.UUID
    organization_id: uuid.UUID

    @property
    def is_managing(self) -> bool:
        return self.account_id != self.key_account_id

    def require(self, rule: RoleRule) -> None:
        if not rule.allows(self.key_role):
            raise ForbiddenError(rule.refusal)


def account_managers(action: str) -> RoleRule:
    return RoleRule(lambda role: role.may_manage_accounts, f"Only Admin or SuperPartner accounts may {action}")


def admins(action: str) -> RoleRule:
    return RoleRule(lambda role: role is Role.ADMIN, f"Only an Admin may {action}")


def current_principal() -> Principal:
    principal = g.get("principal")
    if principal is None:  # a view declared auth=False yet asked who calls: a programming error
        raise RuntimeError("no principal resolved for this request")
    return principal
