"""Organizations, their accounts, API keys and activation tokens."""
from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, LargeBinary, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from canvas.models.base import Base, UtcDateTime, new_id, utcnow


class Role(str, enum.Enum):
    ADMIN = "Admin"
    SUPER_PARTNER = "SuperPartner"
    USER = "User"

    @property
    def role_id(self) -> uuid.UUID:
        return ROLE_IDS[self]

    @property
    def may_manage_accounts(self) -> bool:
        return self in (Role.ADMIN, Role.SUPER_PARTNER)


# Stable ids, the Canvas document's where it shows them.
ROLE_IDS = {
    Role.ADMIN: uuid.UUID("9c525665-df99-4aee-9e52-1a55853db03b"),
    Role.USER: uuid.UUID("349889ad-4277-42d0-a268-5cd27230cfc5"),
    Role.SUPER_PARTNER: uuid.UUID("5b0e7d4c-2f3a-4e55-9a1d-6f0c8e2b7a14"),
}


class Organization(Base):
    __tablename__ = "organization"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    # CIDRs allowed to call the API for this organization; empty means any address.
    ip_allowlist: Mapped[list[str]] = mapped_column(JSON, default=list)
    date_created: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    accounts: Mapped[list[Account]] = relationship(back_populates="organization")


class Account(Base):
    __tablename__ = "account"
    # GET Accounts: an organization's active accounts, oldest first
    # (with the id: a deep page's ids are read from the index alone)
    __table_args__ = (Index("ix_account_organization_listed", "organization_id", "active", "date_created", "email",
                            "id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"), index=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # stored lower-case
    first_name: Mapped[str] = mapped_column(String(200), default="")
    last_name: Mapped[str] = mapped_column(String(200), default="")
    phone: Mapped[str | None] = mapped_column(String(50))
    role: Mapped[Role] = mapped_column(String(20))
    country_key: Mapped[str | None] = mapped_column(String(8))
    global_notifications: Mapped[bool] = mapped_column(Boolean, default=False)
    default_notification_email: Mapped[str | None] = mapped_column(String(320))
    time_zone: Mapped[str | None] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    date_created: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    organization: Mapped[Organization] = relationship(back_populates="accounts", lazy="joined")

    @property
    def role_enum(self) -> Role:
        return Role(self.role)


class ApiKey(Base):
    """A Consumer/SecretKey pair. Only a keyed hash of the secret is kept."""

    __tablename__ = "api_key"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("account.id"), index=True)
    consumer: Mapped[str] = mapped_column(String(64), unique=True)
    secret_salt: Mapped[bytes] = mapped_column(LargeBinary(32))
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    date_created: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    account: Mapped[Account] = relationship(lazy="joined")


class ActivationToken(Base):
    """A single-use, expiring link that activates an account created with `activated: false`."""

    __tablename__ = "activation_token"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("account.id"), index=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
