"""A forking worker compiles a run's statements once, before it forks (workers/worker.py).

SQLAlchemy compiles a statement the first time a process executes it and keeps the result in its engine's cache. A
forked child inherits its parent's cache, but what it adds dies with it: without this, each run of a forking worker
compiled its claim, its steps and its end again, about 40% of a no-op run's CPU time there (measured with a CPU
profile of the children, PostgreSQL). So the parent rehearses a run's bookkeeping (Runner.rehearse) against a
workflow and a run made for the purpose, in a transaction it rolls back: nothing is written, and no other process
sees the rows.
"""
from __future__ import annotations

import logging
import uuid

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from canvas.models import Account, Organization, Role, Workflow, WorkflowRun
from canvas.models.base import utcnow

log = logging.getLogger(__name__)
REHEARSED_BLOCK = "noop"


def compile_run_statements(services) -> bool:  # noqa: ANN001 - canvas.extensions.Services
    """Rehearse a run's bookkeeping in this process and roll it back; False (and a log line) when the database
    refused, which only costs the children the compilation."""
    from canvas.execution.runner import Runner

    try:
        with services.db.engine.connect() as connection, connection.begin() as transaction:
            try:
                Runner(services).rehearse(connection, _scratch_run(connection))
            finally:
                if transaction.is_active:  # a refused statement has rolled it back already
                    transaction.rollback()
    except SQLAlchemyError as error:
        log.info("a run's statements were not compiled before forking (%s); each run compiles them",
                 type(error).__name__)
        return False
    return True


def _scratch_run(connection) -> uuid.UUID:  # noqa: ANN001 - a Connection in a transaction
    """A queued run of a two-block workflow, whose rows exist only in the connection's transaction."""
    now = utcnow()
    chain = [{"uniqueBlockId": str(uuid.uuid4()), "blockName": f"Rehearsal {number}", "block": REHEARSED_BLOCK,
              "application": None, "variables": {}} for number in (1, 2)]
    with Session(bind=connection) as session:  # joins the transaction without committing it (rollback_only)
        organization = Organization(id=uuid.uuid4(), name="rehearsal")
        account = Account(id=uuid.uuid4(), organization_id=organization.id,
                          email=f"rehearsal-{uuid.uuid4().hex}@rehearsal.invalid", role=Role.USER.value)
        workflow = Workflow(id=uuid.uuid4(), account_id=account.id, organization_id=organization.id, name="rehearsal",
                            chain=chain, chain_overrides=[])
        run = WorkflowRun(id=uuid.uuid4(), workflow_id=workflow.id, account_id=account.id, status="Queued",
                          run_from_block=1, run_till_block=2, date_queued=now, heartbeat_at=now)
        for row in (organization, account, workflow, run):  # each after the row it refers to
            session.add(row)
            session.flush()
        return run.id
