"""canvas.schema_version knows the schema this release needs without alembic: its SCHEMA_HEAD is alembic's head, and
the migrations stay numbered in one line, which is what lets revisions compare as text."""
from __future__ import annotations

from alembic.script import ScriptDirectory

from canvas.migrate import alembic_config, head_revision
from canvas.schema_version import SCHEMA_HEAD


def test_the_schema_head_is_alembics():
    assert SCHEMA_HEAD == head_revision(), "a migration was added: set SCHEMA_HEAD in canvas/schema_version.py"


def test_migrations_are_numbered_in_one_line_so_revisions_compare_as_text():
    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    oldest_first = list(reversed(list(scripts.walk_revisions())))
    assert [script.revision for script in oldest_first] == [f"{number:04d}" for number in
                                                            range(1, len(oldest_first) + 1)]
    assert [script.down_revision for script in oldest_first] == [None] + [script.revision for script in
                                                                           oldest_first[:-1]]
