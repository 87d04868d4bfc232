"""Helpers of the network block tests (test_net_*.py): a BlockContext built directly, as the runner would, and the
check that no credential value leaks into an error message or a log line."""
from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import pytest

from canvas.execution.blocks.base import merged_variables
from canvas.execution.context import BlockContext, BlockError
from canvas.execution.data import BlockData, FileData, Records
from canvas.execution.registry import get_block
from canvas.network.guard import NetworkPolicy
from canvas.storage.blob import FileSystemBlobStore

LOOPBACK = NetworkPolicy.from_setting("127.0.0.0/8")
STRICT = NetworkPolicy()  # the platform default: public addresses only
SHORT_TIMEOUT = 1.0


def make_context(key: str, variables: dict | None, credentials: dict | None, tmp_path: Path,
                 policy: NetworkPolicy | None = LOOPBACK) -> BlockContext:
    block_class = get_block(key)
    return BlockContext(
        merged_variables(block_class, variables or {}), credentials, logging.getLogger(f"canvas.block.{key}"),
        FileSystemBlobStore(tmp_path / "blobs"), None, "run-1", 1, "net test", network_policy=policy,
        temp_dir=tmp_path,
    )


def run_block(key: str, tmp_path: Path, *, variables: dict | None = None, credentials: dict | None = None,
              data: BlockData = None, policy: NetworkPolicy | None = LOOPBACK) -> BlockData:
    """Runs the block; records are drained (a lazy block does its work while they are read)."""
    output = get_block(key)().run(make_context(key, variables, credentials, tmp_path, policy), data)
    return Records(list(output)) if isinstance(output, Records) else output


def records(key: str, tmp_path: Path, **kwargs) -> list[dict]:
    output = run_block(key, tmp_path, **kwargs)
    assert isinstance(output, Records), output
    return list(output)


def failure(key: str, tmp_path: Path, expected: type[BlockError] = BlockError, **kwargs) -> BlockError:
    """The error the block fails with, checked to be exactly of the `expected` class."""
    with pytest.raises(BlockError) as raised:
        run_block(key, tmp_path, **kwargs)
    assert type(raised.value) is expected, f"{type(raised.value).__name__}: {raised.value}"
    return raised.value


def file_of(name: str, content: bytes, content_type: str = "application/octet-stream") -> FileData:
    return FileData.from_bytes(name, content_type, content)


def assert_no_secrets(texts: Iterable[str], secrets: Iterable[str]) -> None:
    leaked = [(secret, text) for text in texts for secret in secrets if secret and secret in text]
    assert not leaked, leaked


def logged_text(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records]
