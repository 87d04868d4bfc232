"""Records → a CSV file kept in the File Hub: "Records to CSV" followed by "File Hub write", as one block."""
from __future__ import annotations

import dataclasses

from canvas.execution.blocks.base import Block
from canvas.execution.blocks.csv_from_records import CsvFromRecords
from canvas.execution.blocks.filehub_write import FileHubWrite
from canvas.execution.context import BlockContext
from canvas.execution.data import BlockData, FileData
from canvas.execution.registry import register


@register
class FileHubWriteCsv(Block):
    key = "filehub.write_csv"
    title = "Records to CSV in File Hub"
    description = "Writes the input records as a CSV file named `filename` into the account's File Hub."
    application_kind = "filehub"
    side_effects = True
    input_kind = "records"
    output_kind = "file"
    variables = {**CsvFromRecords.variables, "overwrite": FileHubWrite.variables["overwrite"]}

    def run(self, context: BlockContext, data: BlockData) -> FileData:
        csv_variables = {name: context.variables.get(name) for name in CsvFromRecords.variables}
        csv_file = CsvFromRecords().run(dataclasses.replace(context, variables=csv_variables), data)
        hub_variables = {"filename": csv_file.name, "overwrite": context.variables.get("overwrite", True)}
        return FileHubWrite().run(dataclasses.replace(context, variables=hub_variables), csv_file)
