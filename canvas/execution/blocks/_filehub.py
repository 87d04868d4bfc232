"""Helpers shared by the File Hub blocks."""
from __future__ import annotations

from canvas.execution.context import BlockContext, BlockError
from canvas.storage.blob import FileHub


def require_file_hub(context: BlockContext) -> FileHub:
    if context.file_hub is None:
        raise BlockError("the File Hub is not available to this run")
    return context.file_hub


def checked_file_name(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise BlockError("variable 'filename' must name a File Hub file")
    return value
