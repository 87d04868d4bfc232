"""Workflow templates and their immutable published versions."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from canvas.models.base import Base, UtcDateTime, new_id, utcnow


class WorkflowTemplate(Base):
    """A template's identity and its working state. `definition` is the draft (or the current published one)."""

    __tablename__ = "workflow_template"
    # GET WorkflowTemplates: the global ones and an organization's, by name (the organization read from the index)
    __table_args__ = (Index("ix_workflow_template_listed", "name", "id", "organization_id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("organization.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(20))  # Draft | Published
    version: Mapped[str | None] = mapped_column(String(40))  # latest published version
    definition: Mapped[dict] = mapped_column(JSON)  # {"applications": [...], "chain": [...]}
    draft_is_committed: Mapped[bool | None] = mapped_column(Boolean)
    date_committed: Mapped[datetime | None] = mapped_column(UtcDateTime)
    source: Mapped[str] = mapped_column(String(20), default="catalog")  # catalog | api
    content_hash: Mapped[str] = mapped_column(String(64), default="")  # of the file or draft last loaded
    date_created: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    date_modified: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class WorkflowTemplateVersion(Base):
    """A published version, kept for the workflows instantiated from it."""

    __tablename__ = "workflow_template_version"
    __table_args__ = (UniqueConstraint("template_id", "version"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    template_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workflow_template.id"), index=True)
    version: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    definition: Mapped[dict] = mapped_column(JSON)
    content_hash: Mapped[str] = mapped_column(String(64))
    date_created: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
