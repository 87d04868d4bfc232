"""The migrations build exactly the schema the models describe (on the suite's database: PostgreSQL in CI)."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from canvas.models import Base


def test_the_migrated_schema_is_the_models_schema(migrated_database):
    engine = create_engine(migrated_database)
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        engine.dispose()
    assert differences == [], "a model changed without a migration (or the other way round)"
