"""No operation: gives its input unchanged (benchmarks, and a placeholder while a chain is being built)."""
from __future__ import annotations

from canvas.execution.blocks.base import Block, register
from canvas.execution.context import BlockContext
from canvas.execution.data import BlockData


@register
class NoOperation(Block):
    key = "noop"
    title = "No operation"
    input_kind = "any"
    output_kind = "any"

    def run(self, context: BlockContext, data: BlockData) -> BlockData:
        return data
