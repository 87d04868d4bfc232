"""SQLAlchemy models, one module per aggregate. Importing this package registers every table on `Base.metadata`."""
from canvas.models.account import Account, ActivationToken, ApiKey, Organization, Role
from canvas.models.application import ApplicationGrant, RegisteredApplication
from canvas.models.base import Base
from canvas.models.template import WorkflowTemplate, WorkflowTemplateVersion
from canvas.models.workflow import Workflow, WorkflowApplication

__all__ = [
    "Account",
    "ActivationToken",
    "ApiKey",
    "ApplicationGrant",
    "Base",
    "Organization",
    "RegisteredApplication",
    "Role",
    "Workflow",
    "WorkflowApplication",
    "WorkflowTemplate",
    "WorkflowTemplateVersion",
]
