"""SQLAlchemy models, one module per aggregate. Importing this package registers every table on `Base.metadata`."""
from canvas.models.account import Account, ActivationToken, ApiKey, Organization, Role
from canvas.models.application import ApplicationGrant, RegisteredApplication
from canvas.models.audit import AuditEntry
from canvas.models.base import Base
from canvas.models.console import ConsolePassword, ConsoleSession
from canvas.models.flow import (CallbackDelivery, FlowCallback, FlowDraft, FlowSettings, FlowVersion, FlowWebhook,
                                WebhookNonce)
from canvas.models.run import ACTIVE_RUN_STATES, FINAL_RUN_STATES, BlockOutput, BlockRun, LogLine, WorkflowRun
from canvas.models.schedule import ScheduleOccurrence, WorkflowSchedule
from canvas.models.template import WorkflowTemplate, WorkflowTemplateVersion
from canvas.models.workflow import Workflow, WorkflowApplication

__all__ = [
    "ACTIVE_RUN_STATES",
    "FINAL_RUN_STATES",
    "Account",
    "AuditEntry",
    "BlockOutput",
    "BlockRun",
    "CallbackDelivery",
    "ConsolePassword",
    "ConsoleSession",
    "FlowCallback",
    "FlowDraft",
    "FlowSettings",
    "FlowVersion",
    "FlowWebhook",
    "LogLine",
    "WebhookNonce",
    "ActivationToken",
    "ApiKey",
    "ApplicationGrant",
    "Base",
    "Organization",
    "RegisteredApplication",
    "Role",
    "ScheduleOccurrence",
    "Workflow",
    "WorkflowApplication",
    "WorkflowRun",
    "WorkflowSchedule",
    "WorkflowTemplate",
    "WorkflowTemplateVersion",
]
