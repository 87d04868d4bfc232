"""A block's error output: the input records it set aside under onRecordError `continue`, one JSON line each —
`{"position", "record", "error", "errorClass", "outcomeUnknown"}` — written to a temporary file while the block runs
and stored in the blob store beside its output (GET /api/WorkflowRun/<id>/Block/<n>/Errors).

The error text goes through the block's redactor: a target that echoes a credential in its answer does not put it
into the error output.
"""
from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from canvas.execution.context import BlockError

ERRORS_CONTENT_TYPE = "application/x-ndjson"


class RecordErrors:
    def __init__(self, temp_dir: Path | None, redact: Callable[[str], str]) -> None:
        self.temp_dir, self.redact = temp_dir, redact
        self.count = 0
        self._file = None

    def add(self, record: Any, position: int, error: BlockError) -> None:
        if self._file is None:
            self._file = tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=self.temp_dir,  # noqa: SIM115
                                                     prefix="canvas-errors-", suffix=".jsonl", delete=False)
        line = {"position": position, "record": record, "error": self.redact(str(error))[:4000],
                "errorClass": type(error).__name__, "outcomeUnknown": bool(error.outcome_unknown)}
        self._file.write(json.dumps(line, default=str, ensure_ascii=False) + "\n")
        self.count += 1

    def store(self, blob_store, key: str) -> str | None:  # noqa: ANN001 - canvas.storage.BlobStore
        """The blob key of the stored error output, or None when no record was set aside."""
        if self._file is None:
            return None
        path = Path(self._file.name)
        self._file.close()
        try:
            blob_store.put_file(key, path)
        finally:
            path.unlink(missing_ok=True)
        return key

    def discard(self) -> None:
        """A failed attempt's errors: the next attempt reads its input again, from the start."""
        if self._file is not None:
            self._file.close()
            Path(self._file.name).unlink(missing_ok=True)
        self._file, self.count = None, 0
