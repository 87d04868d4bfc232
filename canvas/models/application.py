"""Registered applications: one account's encrypted credentials for one catalog application."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from canvas.models.base import Base, UtcDateTime, new_id, utcnow


class RegisteredApplication(Base):
    __tablename__ = "registered_application"
    # GET RegApplications and /v2/credentials: an account's, oldest first
    __table_args__ = (Index("ix_registered_application_account_created", "account_id", "date_created", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("account.id"), index=True)
    # The catalog is data (templates_catalog/applications), so this is a reference by id, not a foreign key.
    application_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    short_name: Mapped[str] = mapped_column(String(40))
    tag_text: Mapped[str] = mapped_column(String(200))
    credentials_ciphertext: Mapped[str] = mapped_column(Text)  # Fernet token of the credentials JSON
    is_authenticated: Mapped[bool] = mapped_column(Boolean, default=False)
    faulted: Mapped[bool] = mapped_column(Boolean, default=False)
    fault_reason: Mapped[str | None] = mapped_column(Text)
    date_created: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    date_modified: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
    date_authenticated: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Grants (seed 003 idea): when restricted, only the workflows listed in application_grant may use it.
    restricted_to_grants: Mapped[bool] = mapped_column(Boolean, default=False)


class ApplicationGrant(Base):
    """Allows one workflow to use a registered application that is restricted to grants."""

    __tablename__ = "application_grant"

    registered_application_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("registered_application.id", ondelete="CASCADE"), primary_key=True
    )
    workflow_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    date_created: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
