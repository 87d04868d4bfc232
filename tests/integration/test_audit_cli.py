"""The command line's changes are audited as an operator's (actor kind "cli"), never with the keys they print."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from canvas.models import AuditEntry
from tests.process_tools import canvas_env, run_canvas


@pytest.mark.slow
def test_org_create_keys_rotate_and_ip_allowlist_are_audited_as_the_command_line(tmp_path):
    data_dir = tmp_path / "data"
    env = canvas_env(data_dir)
    created = json.loads(run_canvas("org", "create", "--name", "Ops", "--admin-email", "ops@ops.test", "--json",
                                    env=env).stdout)
    rotated = json.loads(run_canvas("keys", "rotate", "--account", created["accountId"], "--json", env=env).stdout)
    allowed = run_canvas("org", "ip-allowlist", created["organizationId"], "10.0.0.0/8", env=env)
    assert allowed.returncode == 0, allowed.stderr

    engine = create_engine(f"sqlite:///{data_dir / 'canvas.db'}")
    with Session(engine) as session:
        entries = session.scalars(select(AuditEntry).order_by(AuditEntry.occurred_at)).all()
    engine.dispose()
    actions = [entry.action for entry in entries]
    assert actions == ["organization.create", "account.create", "account.keys.rotate", "account.keys.rotate",
                       "organization.ip_allowlist.update"]
    assert {(entry.actor_kind, entry.actor_id, str(entry.organization_id)) for entry in entries} == {
        ("cli", None, created["organizationId"])}
    assert entries[-1].changes == {"ip_allowlist": {"before": [], "after": ["10.0.0.0/8"]}}
    stored = json.dumps([entry.changes for entry in entries])
    for secret in (created["secretKey"], rotated["secretKey"], created["consumer"], rotated["consumer"]):
        assert secret not in stored
