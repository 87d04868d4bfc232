"""Comparing one block's stored outputs across two runs: records by a key, files by content."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

from canvas.execution.serialization import iter_json_lines
from canvas.models import BlockOutput

SAMPLE_SIZE = 10
CHUNK = 1024 * 1024


def compare_outputs(store, left: BlockOutput, right: BlockOutput, key: str | None) -> dict:  # noqa: ANN001
    summary = {"left": _describe(left), "right": _describe(right), "identical": left.sha256 == right.sha256}
    if left.kind == right.kind == "records":
        summary["records"] = _compare_records(store, left, right, key)
    else:
        summary["bytes"] = {"sizeDifference": right.size - left.size,
                            "firstDifferenceAt": _first_difference(store, left, right)}
    return summary


def _describe(output: BlockOutput) -> dict:
    return {"runId": output.run_id, "kind": output.kind, "contentType": output.content_type, "size": output.size,
            "recordCount": output.record_count, "sha256": output.sha256}


def _compare_records(store, left: BlockOutput, right: BlockOutput, key: str | None) -> dict:  # noqa: ANN001
    """Only a digest per record is held in memory, so large outputs compare in bounded space per record."""
    left_index = dict(_keyed_digests(store, left, key))
    added, changed, unchanged = [], [], 0
    for record_key, digest in _keyed_digests(store, right, key):
        previous = left_index.pop(record_key, None)
        if previous is None:
            added.append(record_key)
        elif previous != digest:
            changed.append(record_key)
        else:
            unchanged += 1
    removed = list(left_index)
    return {"key": key or "(whole record)", "added": len(added), "removed": len(removed), "changed": len(changed),
            "unchanged": unchanged, "addedSample": added[:SAMPLE_SIZE], "removedSample": removed[:SAMPLE_SIZE],
            "changedSample": changed[:SAMPLE_SIZE]}


def _keyed_digests(store, output: BlockOutput, key: str | None) -> Iterator[tuple[str, str]]:  # noqa: ANN001
    for position, record in enumerate(iter_json_lines(lambda: store.open(output.blob_key))):
        canonical = json.dumps(record, sort_keys=True, default=str)
        digest = hashlib.sha1(canonical.encode()).hexdigest()
        if key is None:
            yield digest, digest
        else:
            yield str(record.get(key, f"(no {key} in record {position})")), digest


def _first_difference(store, left: BlockOutput, right: BlockOutput) -> int | None:  # noqa: ANN001
    if left.sha256 == right.sha256:
        return None
    if not left.blob_key or not right.blob_key:  # one of them gave no output at all
        return 0
    offset = 0
    with store.open(left.blob_key) as a, store.open(right.blob_key) as b:
        while True:
            chunk_a, chunk_b = a.read(CHUNK), b.read(CHUNK)
            if chunk_a != chunk_b:
                return offset + next((i for i, (x, y) in enumerate(zip(chunk_a, chunk_b)) if x != y),
                                     min(len(chunk_a), len(chunk_b)))
            if not chunk_a:
                return None
            offset += len(chunk_a)
