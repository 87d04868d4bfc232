"""Workflows: a template instantiated for one account, bound to its registered applications."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from canvas.models.base import Base, UtcDateTime, new_id, utcnow


LIVE = "date_deleted IS NULL"


class Workflow(Base):
    __tablename__ = "workflow"
    __table_args__ = (
        # The lists of live workflows, each in its order, counted without reading the table: GET Workflows (an
        # account's, oldest first), GET /v2/flows of a User (its own, by id) and of a manager (its organization's).
        Index("ix_workflow_account_created", "account_id", "date_created", "id",
              sqlite_where=text(LIVE), postgresql_where=text(LIVE)),
        Index("ix_workflow_account_live", "account_id", "id", sqlite_where=text(LIVE), postgresql_where=text(LIVE)),
        Index("ix_workflow_organization_live", "organization_id", "id",
              sqlite_where=text(LIVE), postgresql_where=text(LIVE)),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("account.id"), index=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"), index=True)
    template_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("workflow_template.id"), index=True)
    template_version: Mapped[str | None] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default="Ready")  # Ready | Queued | Running | Failed
    current_block: Mapped[int] = mapped_column(Integer, default=0)
    # The resolved chain: [{uniqueBlockId, blockName, block, application, variables}], overrides merged in.
    chain: Mapped[list] = mapped_column(JSON)
    chain_overrides: Mapped[list] = mapped_column(JSON, default=list)
    # What a run does when a block fails while other branches could go on: failFast starts no further block,
    # continue runs every block that does not depend on a failed one (canvas.execution.graph.FAILURE_POLICIES).
    failure_policy: Mapped[str] = mapped_column(String(20), default="failFast", server_default="failFast")
    # {onFailure, onRecovery, onMissedSchedule, emails} (canvas.notifications.settings); null: the account's default
    notification_settings: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))
    is_customized: Mapped[bool] = mapped_column(Boolean, default=False)
    is_scheduled: Mapped[bool] = mapped_column(Boolean, default=False)
    schedule_frequency: Mapped[str | None] = mapped_column(Text)
    date_next_schedule: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    date_last_run: Mapped[datetime | None] = mapped_column(UtcDateTime)
    date_created: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    date_modified: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    date_deleted: Mapped[datetime | None] = mapped_column(UtcDateTime)  # soft delete: run history stays

    bindings: Mapped[list[WorkflowApplication]] = relationship(
        order_by="WorkflowApplication.position", cascade="all, delete-orphan")


class WorkflowApplication(Base):
    """Which registered application serves one of the template's applications (by shortName)."""

    __tablename__ = "workflow_application"

    workflow_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workflow.id", ondelete="CASCADE"), primary_key=True)
    short_name: Mapped[str] = mapped_column(String(40), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    registered_application_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("registered_application.id"), index=True)
