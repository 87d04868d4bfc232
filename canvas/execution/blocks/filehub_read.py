"""File Hub read: a file the account keeps on the platform's own blob store."""
from __future__ import annotations

from canvas.execution.blocks._file_names import file_hub_name_problem
from canvas.execution.blocks._filehub import checked_file_name, require_file_hub
from canvas.execution.blocks.base import Block, VariableSpec, register
from canvas.execution.context import BlockContext, BlockError
from canvas.execution.data import BlockData, FileData
from canvas.storage.blob import BlobNotFoundError, InvalidFileNameError


@register
class FileHubRead(Block):
    key = "filehub.read"
    title = "File Hub read"
    description = "Gives the File Hub file `filename` (a path inside the account's File Hub); any input is ignored."
    application_kind = "filehub"
    input_kind = "any"
    output_kind = "file"
    variables = {
        "filename": VariableSpec("string", required=True, description="Name of the file, folders separated by '/'.",
                                 text_check=file_hub_name_problem),
    }

    def run(self, context: BlockContext, data: BlockData) -> FileData:
        hub = require_file_hub(context)
        name = checked_file_name(context.variables.get("filename"))
        try:
            return hub.open(name)
        except InvalidFileNameError as error:
            raise BlockError(error.message) from None
        except BlobNotFoundError:
            raise BlockError(f"no file {name!r} in the File Hub") from None
