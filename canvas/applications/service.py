"""Registered applications: register (verified first), list, update, re-verify, delete, grant, decrypt."""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from canvas.applications.catalog import ApplicationCatalog, ApplicationSpec
from canvas.applications.credentials import merge_credentials, parse_credentials_json, validate_credentials
from canvas.applications.sql_urls import check_sql_url
from canvas.audit import service as audit
from canvas.db import end_reading
from canvas.errors import BadRequestError, ConflictError, ForbiddenError, NotFoundError
from canvas.models import ApplicationGrant, RegisteredApplication, Workflow, WorkflowApplication
from canvas.models.base import utcnow

log = logging.getLogger(__name__)
AUTHENTICATION_ERROR = "Authentication Error: "
# Kinds whose applications hold no credentials of a system elsewhere (the platform's own File Hub): authenticated
# without a verification, as the Canvas document shows File Hub (isAuthenticated true, dateTimeUtcAuthenticated null).
NOTHING_TO_VERIFY = frozenset({"filehub", "none"})


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
    credentials = checked_credentials(spec, parse_credentials_json(data["credentialsJson"]))
    verified = verify_outside_transaction(session, verifier, spec, credentials)
    now = utcnow()
    registered = RegisteredApplication(
        account_id=account_id, application_id=uuid.UUID(spec.id), short_name=spec.short_name,
        tag_text=_tag_text(data) or spec.name,
        credentials_ciphertext=box.encrypt_json(credentials), is_authenticated=is_authenticated(spec, verified),
        date_authenticated=now if verified else None, date_created=now, date_modified=now)
    session.add(registered)
    session.flush()
    audit.record_change(session, "application.register", "application", registered, {})
    return registered


TAG_TEXT_MAX_LENGTH = 200  # registered_application.tag_text


def _tag_text(data: dict) -> str:
    """The registration's name, checked here for every caller (the v2 dialect and the console send no Canvas
    schema; a longer one failed in the database, a 500)."""
    text = (data.get("tagText") or "").strip()
    if len(text) > TAG_TEXT_MAX_LENGTH:
        raise BadRequestError(f"tagText: Longer than maximum length {TAG_TEXT_MAX_LENGTH}.", field="tagText")
    return text


def register_application_again(session: Session, catalog: ApplicationCatalog, box, verifier: Verifier,  # noqa: ANN001
                               account_id: uuid.UUID, registered_id: Any, data: dict) -> RegisteredApplication:
    """POST RegApplication/<id>: the body's registration applied to registered application <id> (credentials
    replaced, verified first), rather than a new registration that would leave the path's id silently unused."""
    registered = get_registered(session, account_id, registered_id)
    if str(data["applicationId"]).lower() != str(registered.application_id):
        raise BadRequestError(f"applicationId: registered application {registered.id} is of application "
                              f"{registered.application_id}, not {data['applicationId']}", field="applicationId")
    spec = find_application(catalog, registered.application_id)
    credentials = checked_credentials(spec, parse_credentials_json(data["credentialsJson"]))
    before = audit.snapshot(registered)
    _mark_verified(registered, spec, verify_outside_transaction(session, verifier, spec, credentials))
    registered.credentials_ciphertext = box.encrypt_json(credentials)
    registered.tag_text = _tag_text(data) or spec.name
    registered.date_modified = utcnow()
    audit.record_change(session, "application.update", "application", registered, before)
    return registered


def verify_outside_transaction(session: Session, verifier: Verifier, spec: ApplicationSpec,
                               credentials: dict) -> bool:
    """Verification against the real system may take seconds: the request's transaction, which has only read so
    far, ends first (canvas.db.end_reading)."""
    end_reading(session)
    return verifier.verify(spec, credentials)


def checked_credentials(spec: ApplicationSpec, values: dict) -> dict:
    """Credentials validated against the application's fields, and usable."""
    credentials = validate_credentials(spec, values)
    check_usable(spec, credentials)
    return credentials


def check_usable(spec: ApplicationSpec, credentials: dict) -> None:
    """Refuse, before any verification touches a network or a file, credentials that cannot be used at all (an
    SQLite file while those are off, a URL scheme of no database)."""
    if spec.kind == "sql":
        check_sql_url(credentials)


def is_authenticated(spec: ApplicationSpec, verified: bool) -> bool:
    """Verified against the real system, or nothing there to verify. An application whose credentials are never
    checked (Quinyx, Talentsoft, Talent Manager) is not authenticated: saying so would be a claim nobody made."""
    return verified or spec.kind in NOTHING_TO_VERIFY


def request_id(path_id: str | None, body_id: Any) -> Any:
    """The id a request acts on when it may give one in the path and one in the body: they must agree."""
    if path_id is None or body_id is None:
        return body_id if path_id is None else path_id
    if _as_uuid(path_id, "id") != _as_uuid(body_id, "id"):
        raise BadRequestError(f"id: the body's id {body_id} differs from the path's id {path_id}", field="id")
    return body_id


REGISTERED_ORDER = (RegisteredApplication.date_created, RegisteredApplication.id)


def list_registered(session: Session, account_id: uuid.UUID,
                    args: dict | None = None) -> tuple[list[RegisteredApplication], int]:
    """The account's registered applications, oldest first: all of them or the page `args` asks for (see
    canvas.workflows.service.list_of); and how many there are in all."""
    from canvas.workflows.service import list_of  # imported here: the workflows service uses this one

    return list_of(session, _registered_of(account_id), REGISTERED_ORDER, args)


def slice_of_registered(session: Session, account_id: uuid.UUID, offset: int, limit: int,
                        application_id: uuid.UUID | None = None) -> tuple[list[RegisteredApplication], int]:
    """The account's registered applications (of one application, if given) from `offset` on, at most `limit`,
    oldest first; and how many there are in all."""
    from canvas.workflows.service import slice_of

    query = _registered_of(account_id)
    if application_id is not None:
        query = query.where(RegisteredApplication.application_id == application_id)
    return slice_of(session, query, REGISTERED_ORDER, offset, limit)


def _registered_of(account_id: uuid.UUID):  # noqa: ANN202 - a Select
    return select(RegisteredApplication).where(RegisteredApplication.account_id == account_id)


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
    before = audit.snapshot(registered)
    if data.get("credentialsJson") is not None:
        update = parse_credentials_json(data["credentialsJson"])
        credentials = merge_credentials(spec, box.decrypt_json(registered.credentials_ciphertext), update)
        check_usable(spec, credentials)
        _mark_verified(registered, spec, verify_outside_transaction(session, verifier, spec, credentials))
        registered.credentials_ciphertext = box.encrypt_json(credentials)
    if tag_text := _tag_text(data):
        registered.tag_text = tag_text
    registered.date_modified = utcnow()
    audit.record_change(session, "application.update", "application", registered, before)
    return registered


def reverify_registered(session: Session, catalog: ApplicationCatalog, box, verifier: Verifier,  # noqa: ANN001
                        account_id: uuid.UUID, registered_id: Any) -> RegisteredApplication:
    """Check stored credentials again; success clears `faulted`, failure sets it and answers the reason."""
    registered = get_registered(session, account_id, registered_id)
    spec = find_application(catalog, registered.application_id)
    credentials = box.decrypt_json(registered.credentials_ciphertext)
    before = audit.snapshot(registered)
    try:
        check_usable(spec, credentials)  # stored before SQLite was turned off, say: still no file is touched
        verified = verify_outside_transaction(session, verifier, spec, credentials)
    except BadRequestError as failure:
        mark_faulted(registered, failure.message.removeprefix(AUTHENTICATION_ERROR))
        audit.record_change(session, "application.reverify", "application", registered, before)
        session.commit()  # the fault is a fact worth keeping even though the call fails
        raise
    _mark_verified(registered, spec, verified)
    audit.record_change(session, "application.reverify", "application", registered, before)
    return registered


def _mark_verified(registered: RegisteredApplication, spec: ApplicationSpec, verified: bool) -> None:
    registered.is_authenticated = is_authenticated(spec, verified)
    registered.faulted = False
    registered.fault_reason = None
    registered.date_authenticated = utcnow() if verified else registered.date_authenticated


def mark_faulted(registered: RegisteredApplication, reason: str) -> None:
    registered.faulted = True
    registered.is_authenticated = False
    registered.fault_reason = reason[:2000]
    registered.date_modified = utcnow()


def workflows_using(session: Session, registered_id: uuid.UUID) -> list[Row]:
    """The live workflows bound to the registered application: (id, name) rows."""
    query = (select(Workflow.id, Workflow.name)
             .join(WorkflowApplication, WorkflowApplication.workflow_id == Workflow.id)
             .where(WorkflowApplication.registered_application_id == registered_id,
                    Workflow.date_deleted.is_(None)))
    return list(session.execute(query))


def delete_registered(session: Session, account_id: uuid.UUID, registered_id: Any) -> None:
    registered = get_registered(session, account_id, registered_id)
    users = workflows_using(session, registered.id)
    if users:
        listed = ", ".join(str(workflow.id) for workflow in users[:5])
        raise ConflictError(f"Registered application {registered.id} is used by workflow(s) {listed}; "
                            "delete or rebind them first")
    # Only deleted workflows still point at it: their bindings go, their run history stays.
    session.execute(delete(WorkflowApplication).where(WorkflowApplication.registered_application_id == registered.id))
    audit.record_removal(session, "application.delete", "application", registered)
    session.delete(registered)


def set_grants(session: Session, account_id: uuid.UUID, registered_id: Any, restricted: bool,
               workflow_ids: list[uuid.UUID]) -> RegisteredApplication:
    """Restrict a registered application to the listed workflows of the same account (or lift the restriction)."""
    registered = get_registered(session, account_id, registered_id)
    before = audit.snapshot(registered)
    granted_before = sorted(str(workflow_id) for workflow_id in granted_workflow_ids(session, registered.id))
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
    granted_after = sorted(str(workflow_id) for workflow_id in set(workflow_ids))
    grants = {"grants": {"before": granted_before, "after": granted_after}} if granted_before != granted_after else {}
    audit.record_change(session, "application.grants.update", "application", registered, before, extra=grants)
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


def shown_authenticated(registered: RegisteredApplication, spec: ApplicationSpec | None) -> bool:
    """Rows registered before verification was told apart say true without ever having been verified: never show
    that as authenticated."""
    verified_or_nothing_to_verify = registered.date_authenticated is not None or (
        spec is not None and spec.kind in NOTHING_TO_VERIFY)
    return registered.is_authenticated and verified_or_nothing_to_verify


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
        "isAuthenticated": shown_authenticated(registered, spec),
        "isOAuthApp": spec.is_oauth_app if spec else False,
        "dateModified": registered.date_modified,
        "dateTimeUtcAuthenticated": authenticated_at,
        "dateTimeForReAuth": reauth_at,
        "sessionTimeMins": session_minutes,
        "sessionSlidingExpiry": spec.session_sliding_expiry if spec else False,
        "faulted": registered.faulted,
    }
