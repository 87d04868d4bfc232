"""What the v2 (JSON:API) dialect keeps beside a workflow: a flow *is* a workflow, these rows only hold the flow
attributes Canvas has no column for, the immutable graph versions, webhooks and run callbacks."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from canvas.models.base import Base, UtcDateTime, new_id, utcnow


class FlowSettings(Base):
    """Flow attributes of a workflow. A workflow made in the Canvas dialect has none: the defaults apply."""

    __tablename__ = "flow_settings"

    workflow_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workflow.id", ondelete="CASCADE"), primary_key=True)
    flow_type: Mapped[str] = mapped_column(String(20), default="ordinary")  # ordinary | long_running
    default_mapper_type: Mapped[str] = mapped_column(String(20), default="jsonata")
    cron: Mapped[str | None] = mapped_column(String(200))
    nodes_config: Mapped[dict] = mapped_column(JSON, default=dict)
    stats_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    latest_version: Mapped[str | None] = mapped_column(String(64))
    last_start_time: Mapped[datetime | None] = mapped_column(UtcDateTime)
    stopped_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # set by stop: webhook calls are refused


class FlowVersion(Base):
    """An immutable graph of a flow; its id is the content hash of the graph."""

    __tablename__ = "flow_version"

    workflow_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workflow.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    number: Mapped[int] = mapped_column(Integer)
    graph: Mapped[dict] = mapped_column(JSON)
    chain: Mapped[list] = mapped_column(JSON)
    date_created: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class FlowWebhook(Base):
    """A secret URL that starts a run. Only a hash of the URL token is kept; the HMAC secret is encrypted."""

    __tablename__ = "flow_webhook"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    workflow_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workflow.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hmac_algorithm: Mapped[str | None] = mapped_column(String(20))  # sha256 | sha512 | None (no verification)
    hmac_secret: Mapped[str | None] = mapped_column(Text)  # SecretBox token
    signature_header: Mapped[str] = mapped_column(String(100), default="X-Signature")
    timestamp_header: Mapped[str] = mapped_column(String(100), default="X-Timestamp")
    nonce_header: Mapped[str] = mapped_column(String(100), default="X-Nonce")
    tolerance_seconds: Mapped[int] = mapped_column(Integer, default=300)
    date_created: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class WebhookNonce(Base):
    """Nonces a webhook has accepted, kept for the timestamp tolerance so a replay is refused."""

    __tablename__ = "webhook_nonce"

    webhook_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("flow_webhook.id", ondelete="CASCADE"),
                                                  primary_key=True)
    nonce: Mapped[str] = mapped_column(String(200), primary_key=True)
    date_seen: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)


class FlowCallback(Base):
    """Where to POST a signed summary when a run of the flow succeeds or fails."""

    __tablename__ = "flow_callback"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    workflow_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workflow.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list] = mapped_column(JSON, default=list)  # run.succeeded | run.failed
    secret: Mapped[str] = mapped_column(Text)  # SecretBox token of the signing secret
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    date_created: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class CallbackDelivery(Base):
    """One summary of one run to one callback, and how its delivery went."""

    __tablename__ = "callback_delivery"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    callback_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("flow_callback.id", ondelete="CASCADE"), index=True)
    run_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    event: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20), default="Pending")  # Pending | Delivered | Failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    date_created: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    date_delivered: Mapped[datetime | None] = mapped_column(UtcDateTime)


class FlowDraft(Base):
    """A flow's pending change: name, description, cron, graph and nodes config, kept apart from the running flow
    until it is published (at most one draft per flow)."""

    __tablename__ = "flow_draft"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    workflow_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workflow.id", ondelete="CASCADE"), unique=True)
    account_id: Mapped[uuid.UUID] = mapped_column(Uuid)  # who saved it last
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    cron: Mapped[str | None] = mapped_column(String(200))
    graph: Mapped[dict] = mapped_column(JSON)
    nodes_config: Mapped[dict] = mapped_column(JSON, default=dict)
    stats_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    date_created: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    date_modified: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
