"""What a forking worker's child spends on a run of real blocks, with the worker's preload of block libraries
(Block.preload: paramiko, the installed SQL drivers) and without it, in the same run.

    .venv/bin/python benchmarks/forked_block_runs.py [--runs 20] [--rounds 2] [--postgres-url URL]

A fresh interpreter warms up as `canvas worker --worker-class fork` does (embedded defaults: SQLite, so the platform's
own database has not loaded psycopg), then forks `--runs` children one after the other, as a forking worker runs its
jobs; each child runs a block of each network kind against a real server on loopback: SFTP upload, SQL query on
PostgreSQL, FTP upload, SMTP e-mail, HTTPS GET (tests/integration/blocks/forked_runs.py). The figures are each child's
CPU time (user + system, from wait4) and wall time, medians per round; the two variants alternate, `--rounds` times
each. PostgreSQL: `--postgres-url`, else 127.0.0.1:5432 when it listens, else a private server
(tests/servers/postgres.py).
"""
from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _harness: it puts the project on the path too

from _harness import cpu_note  # noqa: E402

from tests.integration.blocks.forked_runs import forked_runs, network_steps  # noqa: E402
from tests.servers.certs import generate_tls_certs  # noqa: E402
from tests.servers.ftp import FtpServer  # noqa: E402
from tests.servers.http import HttpServer  # noqa: E402
from tests.servers.postgres import postgres_server  # noqa: E402
from tests.servers.sftp import SftpServer  # noqa: E402
from tests.servers.smtp import SmtpServer  # noqa: E402

VARIANTS = {"preloaded": True, "imported per run": False}


def measure(steps: list[dict], work: Path, preload: bool, runs: int, ca_file: Path) -> tuple[float, float, int]:
    """(median CPU ms, median wall ms, modules the first child imported) over `runs` forked children."""
    answers = forked_runs(steps, work, preload, runs, ca_file)
    failed = [answer["error"] for answer in answers if "error" in answer]
    if failed:
        raise RuntimeError(f"a forked run failed: {failed[0]}")
    return (statistics.median(answer["cpu_seconds"] for answer in answers) * 1000,
            statistics.median(answer["wall_seconds"] for answer in answers) * 1000, len(answers[0]["imported"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="forked children per round and variant")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--postgres-url", help="the SQL block's PostgreSQL (SQLAlchemy URL)")
    options = parser.parse_args()
    logging.getLogger("tests.servers.sftpd").setLevel(logging.CRITICAL)  # each child's session ends as its process does
    with tempfile.TemporaryDirectory(prefix="canvas-bench-forked-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        (root / "tls").mkdir()
        certs = generate_tls_certs(root / "tls")
        servers = [stack.enter_context(server) for server in (
            SftpServer(root / "sftp"), FtpServer(root / "ftp"), SmtpServer(), HttpServer(tls_certs=certs))]
        sftp, ftp, smtp, https = servers
        steps = network_steps(sftp, options.postgres_url or stack.enter_context(postgres_server()), ftp, smtp, https)
        print(f"A forked child running SFTP upload, SQL query, FTP upload, e-mail, HTTPS GET; {options.runs} "
              f"children per round ({cpu_note()})")
        figures: dict[str, list[tuple[float, float, int]]] = {name: [] for name in VARIANTS}
        for round_number in range(1, options.rounds + 1):
            for name, preload in VARIANTS.items():
                work = root / f"{name.replace(' ', '-')}-{round_number}"
                work.mkdir()
                cpu, wall, imported = measure(steps, work, preload, options.runs, certs.ca_file)
                figures[name].append((cpu, wall, imported))
                print(f"  round {round_number} {name:<17} CPU {cpu:6.1f} ms  wall {wall:6.1f} ms  "
                      f"(the first child imported {imported} modules)")
        print("Ratio preloaded / imported per run, by round:")
        for (cpu, wall, _), (cpu_lazy, wall_lazy, _) in zip(figures["preloaded"], figures["imported per run"]):
            print(f"  CPU {cpu / cpu_lazy:.2f}  wall {wall / wall_lazy:.2f}")


if __name__ == "__main__":
    main()
