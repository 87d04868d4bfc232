"""Redis key names live in canvas/queueing/keys.py only."""
from __future__ import annotations

from pathlib import Path

import canvas
from canvas.defaults import DEFAULT_REDIS_PREFIX
from canvas.queueing import keys

PACKAGE = Path(canvas.__file__).parent
ALLOWED = {PACKAGE / "queueing" / "keys.py", PACKAGE / "defaults.py"}


def test_key_prefix_and_queue_name_appear_nowhere_else():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path in ALLOWED:
            continue
        text = path.read_text()
        if f'"{DEFAULT_REDIS_PREFIX}' in text or f'"{keys.RUN_QUEUE}"' in text:
            offenders.append(str(path.relative_to(PACKAGE)))
    assert offenders == []


def test_keys_carry_the_configured_prefix():
    assert keys.schedule_changes_channel("tenant-a:") == "tenant-a:schedule-changes"
    assert keys.schedule_changes_channel() == DEFAULT_REDIS_PREFIX + "schedule-changes"
