"""File Hub write: keeps the input (a file, or records as JSON lines) in the account's File Hub."""
from __future__ import annotations

import dataclasses

from canvas.execution.blocks._file_names import file_hub_name_problem
from canvas.execution.blocks._filehub import checked_file_name, require_file_hub
from canvas.execution.blocks.base import Block, VariableSpec, register
from canvas.execution.context import BlockContext, BlockError
from canvas.execution.data import BlockData, FileData, Records
from canvas.execution.serialization import RECORDS_CONTENT_TYPE, write_records
from canvas.storage.blob import FileHub, InvalidFileNameError, StoredBlob

DEFAULT_RECORDS_FILE_NAME = "records.jsonl"


@register
class FileHubWrite(Block):
    key = "filehub.write"
    title = "File Hub write"
    description = (
        "Writes the input file (or records, as JSON lines) to `filename` in the File Hub, default: the input file's "
        "name, and gives the stored file."
    )
    application_kind = "filehub"
    side_effects = True
    input_kind = "any"
    output_kind = "file"
    variables = {
        "filename": VariableSpec("string", description="Name in the File Hub, folders separated by '/'.",
                                 text_check=file_hub_name_problem),
        "overwrite": VariableSpec("boolean", default=True, description="Replace a file of the same name."),
    }

    def run(self, context: BlockContext, data: BlockData) -> FileData:
        hub = require_file_hub(context)
        name = checked_file_name(context.variables.get("filename") or _default_name(data))
        try:
            if context.variables.get("overwrite") is False and hub.exists(name):
                raise BlockError(f"file already exists in the File Hub: {name}")
            stored = _write(hub, name, data, context)
        except InvalidFileNameError as error:
            raise BlockError(error.message) from None
        context.logger.info("wrote %d bytes to the File Hub as %s", stored.size, name)
        content_type = data.content_type if isinstance(data, FileData) else RECORDS_CONTENT_TYPE
        return dataclasses.replace(hub.open(name), content_type=content_type)


def _default_name(data: BlockData) -> str:
    if isinstance(data, FileData):
        return data.name
    return DEFAULT_RECORDS_FILE_NAME


def _write(hub: FileHub, name: str, data: BlockData, context: BlockContext) -> StoredBlob:
    if isinstance(data, FileData):
        return hub.write(name, data)
    if isinstance(data, Records):
        records = context.cancellable(data)
        return hub.store.put(hub.key_for(name), lambda sink: write_records(Records(records), sink))
    raise BlockError("filehub.write needs a file or records as input, got nothing")
