"""Dry runs: a block with side effects is replaced by a recorder that keeps what the block would have sent."""
from __future__ import annotations

import json

from canvas.execution.blocks.base import Block
from canvas.execution.context import BlockContext
from canvas.execution.data import BlockData, FileData, Records


def recording_block(block_class: type[Block]) -> Block:
    class Recorder(Block):
        key = block_class.key
        title = f"{block_class.title} (dry run)"
        variables = block_class.variables

        def run(self, context: BlockContext, data: BlockData) -> BlockData:
            context.logger.info("dry run: %s was not run; its input is kept as the output, which is what it would "
                                "have sent, with variables %s", block_class.title,
                                json.dumps(context.variables, default=str, sort_keys=True)[:800])
            if isinstance(data, Records):
                return Records(context.cancellable(data))
            if isinstance(data, FileData):
                return data
            return None

    return Recorder()
