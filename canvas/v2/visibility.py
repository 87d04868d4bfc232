"""Who sees what in the v2 dialect: an account that may manage others (Admin, SuperPartner) sees the flows,
executions and logs of its whole workspace (its organization), as the seed's workspace lists do; a User sees its
own. Changing a flow stays its owner's (or acting as the owner with ManagedAccountId). The Canvas dialect's rules
are its own and do not change; no one ever sees another organization's."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

from canvas.auth import Principal


@dataclass(frozen=True)
class Viewer:
    account_id: uuid.UUID
    organization_id: uuid.UUID
    whole_workspace: bool

    @classmethod
    def of(cls, principal: Principal) -> Viewer:
        # Acting as another account (ManagedAccountId) is seeing as that account.
        whole = principal.key_role.may_manage_accounts and not principal.is_managing
        return cls(principal.account_id, principal.organization_id, whole)

    def sees(self, account_id: uuid.UUID, organization_id: uuid.UUID) -> bool:
        if organization_id != self.organization_id:
            return False
        return self.whole_workspace or account_id == self.account_id

    def condition(self, account_column, organization_column):  # noqa: ANN001, ANN201 - SQLAlchemy columns
        """The same rule as a WHERE clause."""
        if self.whole_workspace:
            return organization_column == self.organization_id
        return (account_column == self.account_id) & (organization_column == self.organization_id)


def current_viewer() -> Viewer:
    from canvas.auth import current_principal

    return Viewer.of(current_principal())


def check_workspace() -> None:
    """`workspace_id` (the seed's lists take it) is optional; given, it must be the caller's organization, the
    only workspace it sees."""
    from flask import request

    from canvas.auth import current_principal
    from canvas.errors import NotFoundError

    workspace = request.args.get("workspace_id")
    if workspace and workspace.strip().lower() != str(current_principal().organization_id):
        raise NotFoundError(f"Unknown workspace {workspace}", parameter="workspace_id")
