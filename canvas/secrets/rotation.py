"""`canvas secrets rotate`: re-encrypt every stored secret with the first key, in batches, while the service runs.

Each row is rewritten only if it still holds the token that was read (a concurrent update wins), and rows already
under the first key are skipped, so an interrupted rotation resumes by running it again.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select, update

from canvas.db import Database
from canvas.models import RegisteredApplication
from canvas.secrets.box import SecretBox

log = logging.getLogger(__name__)
DEFAULT_BATCH_SIZE = 200

# Every encrypted column: (model, primary key column, ciphertext column).
ENCRYPTED_COLUMNS = [
    (RegisteredApplication, RegisteredApplication.id, RegisteredApplication.credentials_ciphertext),
]


@dataclass
class RotationReport:
    rotated: int = 0
    already_current: int = 0
    changed_meanwhile: int = 0


def rotate_all(database: Database, box: SecretBox, batch_size: int = DEFAULT_BATCH_SIZE,
               after_batch: Callable[[RotationReport], None] | None = None) -> RotationReport:
    report = RotationReport()
    for model, key_column, cipher_column in ENCRYPTED_COLUMNS:
        last_key = None
        while True:
            batch = _read_batch(database, key_column, cipher_column, last_key, batch_size)
            if not batch:
                break
            _rotate_batch(database, model, key_column, cipher_column, batch, box, report)
            last_key = batch[-1][0]
            if after_batch is not None:
                after_batch(report)
    log.info("secret rotation: %d rotated, %d already current, %d changed meanwhile",
             report.rotated, report.already_current, report.changed_meanwhile)
    return report


def _read_batch(database: Database, key_column, cipher_column, last_key, batch_size: int) -> list:  # noqa: ANN001
    query = select(key_column, cipher_column).order_by(key_column).limit(batch_size)
    if last_key is not None:
        query = query.where(key_column > last_key)
    with database.sessions() as session:
        return list(session.execute(query))


def _rotate_batch(database: Database, model, key_column, cipher_column, batch, box: SecretBox,  # noqa: ANN001
                  report: RotationReport) -> None:
    with database.transaction() as session:
        for key, token in batch:
            if box.is_current(token):
                report.already_current += 1
                continue
            result = session.execute(update(model).where(key_column == key, cipher_column == token)
                                     .values({cipher_column.key: box.rotate(token)}))
            if result.rowcount:
                report.rotated += 1
            else:
                report.changed_meanwhile += 1
