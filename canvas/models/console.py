"""The web console's own rows: an account's password hash, and signed-in browser sessions (server-side, so that
signing out or deactivating an account ends them)."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from canvas.models.base import Base, UtcDateTime, new_id, utcnow


class ConsolePassword(Base):
    """An argon2id hash (with its own salt and cost parameters), never the password."""

    __tablename__ = "console_password"

    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    date_set: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ConsoleSession(Base):
    """A signed-in browser. The cookie holds a random token; only its SHA-256 is kept here."""

    __tablename__ = "console_session"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"), index=True)
    # The account an Admin or SuperPartner acts as (the console's ManagedAccountId); null: its own.
    acting_as_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    csrf_token: Mapped[str] = mapped_column(String(64))
    date_created: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
