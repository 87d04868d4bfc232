"""Wait: passes its input on after a pause (spacing calls to a rate-limited system; long-running tests)."""
from __future__ import annotations

import time

from canvas.execution.blocks.base import Block, VariableSpec
from canvas.execution.context import BlockContext
from canvas.execution.data import BlockData
from canvas.execution.registry import register

CHECK_INTERVAL_SECONDS = 0.1


@register
class Delay(Block):
    key = "delay"
    title = "Wait"
    description = "Waits `seconds`, then gives its input unchanged. A cancelled run stops waiting at once."
    input_kind = "any"
    output_kind = "any"
    variables = {"seconds": VariableSpec("number", default=1, description="How long to wait (at most one day).")}

    def run(self, context: BlockContext, data: BlockData) -> BlockData:
        seconds = min(float(context.variables.get("seconds") or 0), 86400.0)
        deadline = time.monotonic() + seconds
        context.logger.info("waiting %.1f s", seconds)
        while (left := deadline - time.monotonic()) > 0:
            context.raise_if_cancelled()
            time.sleep(min(CHECK_INTERVAL_SECONDS, left))
        return data
