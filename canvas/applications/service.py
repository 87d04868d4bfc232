"""Registered applications: register (verified first), list, update, re-verify, delete, grant, decrypt."""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from canvas.applications.catalog import ApplicationCatalog, ApplicationSpec
from canvas.applications.credentials import merge_credentials, parse_credentials_json, validate_credentials
from canvas.errors import BadRequestError, ConflictError, ForbiddenError, NotFoundError
from canvas.models import ApplicationGrant, RegisteredApplication, Workflow, WorkflowApplication
from canvas.models.base import utcnow

log = logging.getLogger(__name__)
AUTHENTICATION_ERROR = "Authentication Error: "


@dataclass(frozen=True)
class Verifier:
    """What verification needs besides the credentials: the outbound network policy and a timeout."""

    policy: Any
    timeout: float

    def verify(self, spec: ApplicationSpec, credentials: dict) -> bool:
        """True when credentials were checked against the real system; raises BadRequestError when they fail."""
        if not spec.verification_enabled:
            return False
        from canvas.applications.verification import VerificationError, verify_credentials

        try:
            verify_credentials(spec.kind, credentials, policy=self.policy, timeout=self.timeout,
                               settings=dict(spec.verification or {}))
        except VerificationError as failure:
            log.info("verification of a %s application failed: %s", spec.short_name, failure.reason)
            raise BadRequestError(AUTHENTICATION_ERROR + failure.reason, field="credentialsJson") from None
        return True

    @classmethod
    def of(cls, svc) -> "Verifier":  # noqa: ANN001 - canvas.extensions.Services
        """The platform's verifier: its network policy and CANVAS_VERIFY_TIMEOUT_SECONDS."""
        return cls(svc.network_policy, svc.settings["VERIFY_TIMEOUT_SECONDS"])


def find_application(catalog: ApplicationCatalog, application_id: Any) -> ApplicationSpec:
    spec = catalog.get(application_id) if application_id is not None else None
    if spec is None:
        raise BadRequestError(f"Unknown application {application_id}", field="applicationId")
    return spec


def register_application(session: Session, catalog: ApplicationCatalog, box, verifier: Verifier,  # noqa: ANN001
                         account_id: uuid.UUID, data: dict) -> RegisteredApplication:
    """Validate, verify against the real system, then store encrypted. Nothing is stored when any step fails."""
    spec = find_application(catalog, data["applicationId"])
    credentials = validate_credentials(spec, parse_credentials_json(data["credentialsJson"]))
    verified = verifier.verify(spec, credentials)
    now = utcnow()
    registered = RegisteredApplication(
        account_id=account_id, application_id=uuid.UUID(spec.id), short_name=spec.short_name,
        tag_text=(data.get("tagText") or "").strip() or spec.name,
        credentials_ciphertext=box.encrypt_json(credentials), is_authenticated=True,
        date_authenticated=now if verified else None, date_created=now, date_modified=now)
    session.add(registered)
    session.flush()
    return registered


def list_registered(session: Session, account_id: uuid.UUID) -> list[RegisteredApplication]:
    query = (select(RegisteredApplication).where(RegisteredApplication.account_id == account_id)
             .order_by(RegisteredApplication.date_created, RegisteredApplication.id))
    return list(session.scalars(query))


def get_registered(session: Session, account_id: uuid.UUID, registered_id: Any) -> RegisteredApplication:
    """The account's registered application; another account's reads exactly like an unknown one."""
    registered = session.get(RegisteredApplication, _as_uuid(registered_id, "id"))
    if registered is None or registered.account_id != account_id:
        raise NotFoundError(f"Unknown registered application {registered_id}", field="id")
    return registered


def _as_uuid(value: Any, field: str) -> uuid.UUID:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        raise BadRequestError(f"{field}: '{value}' is not a valid id", field=field) from None


def update_registered(session: Session, catalog: ApplicationCatalog, box, verifier: Verifier,  # noqa: ANN001
                      account_id: uuid.UUID, data: dict) -> RegisteredApplication:
    registered = get_registered(session, account_id, data["id"])
    spec = find_application(catalog, registered.application_id)
    if data.get("credentialsJson") is not None:
        update = parse_credentials_json(data["credentialsJson"])
        credentials = merge_credentials(spec, box.decrypt_json(registered.credentials_ciphertext), update)
        _mark_verified(registered, verifier.verify(spec, credentials))
        registered.credentials_ciphertext = box.encrypt_json(credentials)
    if data.get("tagText"):
        registered.tag_text = data["tagText"].strip()
    registered.date_modified = utcnow()
    return registered


def reverify_registered(session: Session, catalog: ApplicationCatalog, box, verifier: Verifier,  # noqa: ANN001
                        account_id: uuid.UUID, registered_id: Any) -> RegisteredApplication:
    """Check stored credentials again; success clears `faulted`, failure sets it and answers the reason."""
    registered = get_registered(session, account_id, registered_id)
    spec = find_application(catalog, registered.application_id)
    try:
        verified = verifier.verify(spec, box.decrypt_json(registered.credentials_ciphertext))
    except BadRequestError as failure:
        mark_faulted(registered, failure.message.removeprefix(AUTHENTICATION_ERROR))
        session.commit()  # the fault is a fact worth keeping even though the call fails
        raise
    _mark_verified(registered, verified)
    return registered


def _mark_verified(registered: RegisteredApplication, verified: bool) -> None:
    registered.is_authenticated = True
    registered.faulted = False
    registered.fault_reason = None
    registered.date_authenticated = utcnow() if verified else registered.date_authenticated


def mark_faulted(registered: RegisteredApplication, reason: str) -> None:
    registered.faulted = True
    registered.is_authenticated = False
    registered.fault_reason = reason[:2000]
    registered.date_modified = utcnow()


def workflows_using(session: Session, registered_id: uuid.UUID) -> list[uuid.UUID]:
    query = (select(Workflow.id).join(WorkflowApplication, WorkflowApplication.workflow_id == Workflow.id)
             .where(WorkflowApplication.registered_application_id == registered_id,
                    Workflow.date_deleted.is_(None)))
    return list(session.scalars(query))


def delete_registered(session: Session, account_id: uuid.UUID, registered_id: Any) -> None:
    registered = get_registered(session, account_id, registered_id)
    users = workflows_using(session, registered.id)
    if users:
        listed = ", ".join(str(workflow_id) for workflow_id in users[:5])
        raise ConflictError(f"Registered application {registered.id} is used by workflow(s) {listed}; "
                            "delete or rebind them first")
    # Only deleted workflows still point at it: their bindings go, their run history stays.
    session.execute(delete(WorkflowApplication).where(WorkflowApplication.registered_application_id == registered.id))
    session.delete(registered)


def set_grants(session: Session, account_id: uuid.UUID, registered_id: Any, restricted: bool,
               workflow_ids: list[uuid.UUID]) -> RegisteredApplication:
    """Restrict a registered application to the listed workflows of the same account (or lift the restriction)."""
    registered = get_registered(session, account_id, registered_id)
    own = set(session.scalars(select(Workflow.id).where(Workflow.account_id == account_id,
                                                         Workflow.id.in_(workflow_ids))))
    unknown = [str(workflow_id) for workflow_id in workflow_ids if workflow_id not in own]
    if unknown:
        raise BadRequestError(f"workflowIds: unknown workflow(s) {', '.join(unknown)}", field="workflowIds")
    session.query(ApplicationGrant).filter_by(registered_application_id=registered.id).delete()
    for workflow_id in dict.fromkeys(workflow_ids):
        session.add(ApplicationGrant(registered_application_id=registered.id, workflow_id=workflow_id))
    registered.restricted_to_grants = restricted
    registered.date_modified = utcnow()
    return registered


def granted_workflow_ids(session: Session, registered_id: uuid.UUID) -> list[uuid.UUID]:
    query = select(ApplicationGrant.workflow_id).where(ApplicationGrant.registered_application_id == registered_id)
    return list(session.scalars(query))


def check_grant(session: Session, registered: RegisteredApplication, workflow_id: uuid.UUID | None) -> None:
    """403 when the registered application is restricted and this workflow holds no grant for it."""
    if not registered.restricted_to_grants:
        return
    if workflow_id is not None and session.scalar(
            select(func.count()).select_from(ApplicationGrant).where(
                ApplicationGrant.registered_application_id == registered.id,
                ApplicationGrant.workflow_id == workflow_id)):
        return
    raise ForbiddenError(f"Registered application {registered.id} ({registered.tag_text}) is not granted to "
                         + (f"workflow {workflow_id}" if workflow_id else "new workflows"))


def decrypt_credentials(box, registered: RegisteredApplication) -> dict:  # noqa: ANN001
    """Plaintext credentials, for the process that is about to use them; never log the result."""
    return box.decrypt_json(registered.credentials_ciphertext)


def registered_to_api(registered: RegisteredApplication, spec: ApplicationSpec | None) -> dict:
    authenticated_at = registered.date_authenticated
    session_minutes = spec.session_time_mins if spec else 0
    reauth_at = authenticated_at + timedelta(minutes=session_minutes) if authenticated_at else None
    return {
        "id": registered.id,
        "shortName": registered.short_name,
        "accountId": registered.account_id,
        "applicationId": registered.application_id,
        "name": spec.name if spec else registered.short_name,
        "tagText": registered.tag_text,
        "description": spec.description if spec else "",
        "isAuthenticated": registered.is_authenticated,
        "isOAuthApp": spec.is_oauth_app if spec else False,
        "dateModified": registered.date_modified,
        "dateTimeUtcAuthenticated": authenticated_at,
        "dateTimeForReAuth": reauth_at,
        "sessionTimeMins": session_minutes,
        "sessionSlidingExpiry": spec.session_sliding_expiry if spec else False,
        "faulted": registered.faulted,
    }
