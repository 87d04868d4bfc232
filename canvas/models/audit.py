"""The audit log: one row per change to an organization's accounts, keys, IP allowlist, applications, templates,
workflows, schedules and flows.

No foreign keys: an entry must outlive what it describes (a deleted workflow, a removed webhook) and is only ever
removed by retention. Secret values are never stored, not even hashed: `changes` carries a marker instead.
"""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from canvas.models.base import Base, UtcDateTime, new_id, utcnow

# Who made a change: a caller of the API (with its key), a web console session, an operator at the command line, or
# the service itself.
ACTOR_KINDS = ("api_key", "console", "cli", "system")


class AuditEntry(Base):
    __tablename__ = "audit_entry"
    __table_args__ = (
        # The list, newest first, and each of its filters within an organization.
        Index("ix_audit_entry_organization_time", "organization_id", "occurred_at", "id"),
        Index("ix_audit_entry_organization_action", "organization_id", "action", "occurred_at"),
        Index("ix_audit_entry_organization_object", "organization_id", "object_type", "object_id", "occurred_at"),
        Index("ix_audit_entry_organization_actor", "organization_id", "actor_id", "occurred_at"),
        # Retention removes the oldest entries of every organization.
        Index("ix_audit_entry_occurred_at", "occurred_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)  # whose Admins may read it
    actor_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)  # the account whose key made the call
    actor_kind: Mapped[str] = mapped_column(String(20), default="system")  # one of ACTOR_KINDS
    acting_as_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)  # ManagedAccountId, when acting for an account
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    action: Mapped[str] = mapped_column(String(64))  # e.g. workflow.update, account.keys.rotate
    object_type: Mapped[str] = mapped_column(String(40))
    object_id: Mapped[str | None] = mapped_column(String(64))
    changes: Mapped[dict] = mapped_column(JSON, default=dict)  # field -> {"before": .., "after": ..}
    request_id: Mapped[str | None] = mapped_column(String(128))
