"""The block registry: block classes by key. Importing this module loads every built-in block module (each one
registers its block with the @register decorator), so get_block and all_blocks see them all.

Block modules should take `register` from canvas.execution.blocks.base; importing it from here works as well, but
then a block module imported by another block module may be caught in an import cycle.
"""
from __future__ import annotations

import importlib
import logging
import pkgutil

from canvas.execution.blocks.base import _BLOCKS, Block, UnknownBlockError, register

__all__ = ["UnknownBlockError", "all_blocks", "get_block", "preload_block_libraries", "register"]
log = logging.getLogger(__name__)


def get_block(key: str) -> type[Block]:
    try:
        return _BLOCKS[key]
    except KeyError:
        raise UnknownBlockError(key) from None


def all_blocks() -> list[type[Block]]:
    return sorted(_BLOCKS.values(), key=lambda block_class: block_class.key)


def preload_block_libraries() -> None:
    """Every block's libraries (Block.preload), for a forking worker before it forks. A block whose libraries fail
    to load is a log line: its runs import them for themselves, and fail there if they must."""
    for block_class in all_blocks():
        try:
            block_class.preload()
        except Exception as error:  # noqa: BLE001 - a broken optional driver must not stop the worker
            log.warning("block %s could not load its libraries before forking (%s: %s); its runs load them",
                        block_class.key, type(error).__name__, error)


def _load_builtin_blocks() -> None:
    import canvas.execution.blocks as package

    for module in pkgutil.iter_modules(package.__path__):
        if not module.name.startswith("_") and module.name != "base":
            importlib.import_module(f"{package.__name__}.{module.name}")


_load_builtin_blocks()
