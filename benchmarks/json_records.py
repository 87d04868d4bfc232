"""json.to_records next to json.load of the same file: time and peak memory, on single JSON values of 1, 8 and 64 MB
(a {"data": [...]} envelope) and on an array of 1,000,000 small records.

    .venv/bin/python benchmarks/json_records.py [--rounds 3] [--quick]

- the files are generated once into a temporary directory, records of five fields (~90 bytes each);
- every case runs in a process of its own, so that its peak RSS (VmHWM, else ru_maxrss) is its own; the figure
  shown is the peak above the process's RSS before the case started (Python, the block registry, ijson);
- a case's time is the best of its rounds (five times as many for files under 10 MB, whose times are short), and
  is quoted as a ratio to json.load of the same file measured in the same run;
- json.to_records runs as a workflow runs it (the block through the registry, its records iterated once): on the
  envelopes both without itemsPath (the whole value is one record, as before) and with itemsPath data.item (one
  record per item, streamed);
- linearity: the time per MB of json.to_records with data.item should not grow with the size (the parser this one
  replaced re-parsed a big value from its start for every 64 KiB read: 1.6 MB took 0.73 s, 6.8 MB 10.3 s). The run
  fails (exit 1) when the 64 MB value costs more than LINEAR_LIMIT times the 1 MB value per MB.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _harness: it puts the project on the path too

from _harness import ROOT, cpu_note, proc_status_kb  # noqa: E402

MB = 1024 * 1024
SINGLE_VALUE_MB = (1, 8, 64)
SMALL_RECORDS = 1_000_000
QUICK_SINGLE_VALUE_MB = (1, 8)
QUICK_SMALL_RECORDS = 100_000
LINEAR_LIMIT = 1.5  # per-MB time of the largest value over the smallest's; noise on a busy machine stays below
RECORDS_PER_WRITE = 1_000  # ~90 kB: a file overshoots its size by less than that


@dataclass
class Measured:
    seconds: float
    peak_mb: float
    records: int


# --- the input files ------------------------------------------------------------------------------------------------


def record(index: int) -> dict:
    return {"id": index, "name": f"record {index}", "score": index + 0.25, "active": index % 2 == 0, "tags": ["a"]}


def write_envelope(path: Path, size_mb: int) -> None:
    """{"data": [records...], "meta": {...}}, written a batch at a time until it is `size_mb` MB."""
    with open(path, "w", encoding="utf-8") as out:
        out.write('{"data": [')
        index, written = 0, 0
        while written < size_mb * MB:
            batch = ",".join(json.dumps(record(number)) for number in range(index, index + RECORDS_PER_WRITE))
            written += out.write(("," if index else "") + batch)
            index += RECORDS_PER_WRITE
        out.write(f'], "meta": {{"count": {index}}}}}')


def write_array(path: Path, count: int) -> None:
    with open(path, "w", encoding="utf-8") as out:
        out.write("[")
        for start in range(0, count, RECORDS_PER_WRITE):
            numbers = range(start, min(start + RECORDS_PER_WRITE, count))
            out.write(("," if start else "") + ",".join(json.dumps(record(number)) for number in numbers))
        out.write("]")


# --- one case, in a process of its own -------------------------------------------------------------------------------


def run_case(mode: str, path: Path, rounds: int) -> Measured:
    """Runs `mode` ("json.load", "to_records" or "to_records:<itemsPath>") on `path`, best of `rounds`."""
    read = load_with_json if mode == "json.load" else block_reader(mode.partition(":")[2])
    before_kb = current_rss_kb()
    best, records = float("inf"), 0
    for _ in range(rounds):
        started = time.perf_counter()
        records = read(path)
        best = min(best, time.perf_counter() - started)
    return Measured(best, (peak_rss_kb() - before_kb) / 1024, records)


def load_with_json(path: Path) -> int:
    with open(path, "rb") as source:
        value = json.load(source)
    return len(value["data"]) if isinstance(value, dict) else len(value)


def block_reader(items_path: str) -> Callable[[Path], int]:
    from canvas.execution.blocks.base import merged_variables
    from canvas.execution.context import BlockContext
    from canvas.execution.data import FileData
    from canvas.execution.registry import get_block

    block_class = get_block("json.to_records")
    variables = merged_variables(block_class, {"itemsPath": items_path})

    def read(path: Path) -> int:
        context = BlockContext(variables, None, logging.getLogger("bench"), None, None, "bench", 1, "bench")
        file = FileData.from_path(path.name, "application/json", path)
        count = 0
        for _ in block_class().run(context, file):
            count += 1
        return count

    return read


def current_rss_kb() -> int:
    return proc_status_kb(os.getpid(), "VmRSS") or 0


def peak_rss_kb() -> int:
    peak = proc_status_kb(os.getpid(), "VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux


def measure(mode: str, path: Path, rounds: int) -> Measured:
    """`mode` on `path` in a fresh interpreter, so that nothing of an earlier case is in its memory figures."""
    completed = subprocess.run([sys.executable, __file__, "--case", mode, str(path), str(rounds)], cwd=ROOT,
                               capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"case {mode} on {path.name} failed:\n{completed.stderr}")
    return Measured(**json.loads(completed.stdout.splitlines()[-1]))


# --- the table -------------------------------------------------------------------------------------------------------


def benchmark(single_value_mb: tuple[int, ...], small_records: int, rounds: int) -> int:
    import ijson

    from canvas.execution.blocks._formats import JSON_BACKEND

    print(f"json.to_records next to json.load ({cpu_note()}, ijson {ijson.__version__} {JSON_BACKEND.backend_name})")
    print("time: best of the rounds; peak: RSS high-water mark above the process's RSS before the case\n")
    print(f"{'input':<44} {'MB':>6} {'records':>9} {'json.load':>10} {'peak':>8}   {'to_records':>10} {'peak':>8}"
          f" {'ratio':>7}")
    per_mb: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="canvas-bench-json-") as directory:
        for size_mb in single_value_mb:
            path = Path(directory) / f"value_{size_mb}mb.json"
            write_envelope(path, size_mb)
            case_rounds = rounds * 5 if size_mb < 10 else rounds
            baseline = measure("json.load", path, case_rounds)
            whole = measure("to_records", path, case_rounds)
            items = measure("to_records:data.item", path, case_rounds)
            print_row(f"single value {size_mb} MB, one record", path, baseline, whole)
            print_row(f"single value {size_mb} MB, itemsPath data.item", path, baseline, items)
            per_mb[size_mb] = items.seconds / (path.stat().st_size / MB)
            path.unlink()
        path = Path(directory) / "small_records.json"
        write_array(path, small_records)
        baseline = measure("json.load", path, rounds)
        print_row(f"{small_records:,} small records (array)", path, baseline, measure("to_records", path, rounds))
    return linearity_verdict(per_mb)


def print_row(label: str, path: Path, baseline: Measured, measured: Measured) -> None:
    size_mb = path.stat().st_size / MB
    print(f"{label:<44} {size_mb:6.1f} {measured.records:9,} {baseline.seconds:9.3f}s {baseline.peak_mb:6.0f}MB"
          f"   {measured.seconds:9.3f}s {measured.peak_mb:6.0f}MB {measured.seconds / baseline.seconds:6.2f}x")


def linearity_verdict(per_mb: dict[int, float]) -> int:
    smallest, largest = min(per_mb), max(per_mb)
    growth = per_mb[largest] / per_mb[smallest]
    steps = ", ".join(f"{size} MB {seconds * 1000:.1f} ms" for size, seconds in per_mb.items())
    print(f"\nitemsPath data.item, time per MB: {steps}; {largest} MB over {smallest} MB: {growth:.2f}x "
          f"({'linear' if growth <= LINEAR_LIMIT else f'NOT linear: over {LINEAR_LIMIT}x'})")
    return 0 if growth <= LINEAR_LIMIT else 1


def main() -> int:
    if sys.argv[1:2] == ["--case"]:
        mode, path, rounds = sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
        print(json.dumps(run_case(mode, path, rounds).__dict__))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs of each case; the best one counts")
    parser.add_argument("--quick", action="store_true",
                        help=f"values of {' and '.join(map(str, QUICK_SINGLE_VALUE_MB))} MB and "
                             f"{QUICK_SMALL_RECORDS:,} small records, one round")
    args = parser.parse_args()
    if args.quick:
        return benchmark(QUICK_SINGLE_VALUE_MB, QUICK_SMALL_RECORDS, 1)
    return benchmark(SINGLE_VALUE_MB, SMALL_RECORDS, args.rounds)


if __name__ == "__main__":
    sys.exit(main())
