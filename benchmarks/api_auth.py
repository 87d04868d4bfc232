"""Authenticate under concurrent load vs. an unauthenticated one-row ORM read, in the same `canvas api` server.

    .venv/bin/python benchmarks/api_auth.py [--seconds 8] [--concurrency 8] [--rounds 3]

Set CANVAS_DATABASE_URL / CANVAS_REDIS_URL to measure on PostgreSQL and a Redis server; the default is the
embedded install (SQLite + embedded Redis). The goal: Authenticate at 0.8 of the baseline's requests/s or better.

The server is ready when /healthz answers 200; until --ready-timeout every failure is retried (refused or reset
connections, timeouts while gunicorn's workers boot, 5xx), then the script stops saying what it last saw, with the
end of the server's log. `canvas api` runs in a process group of its own whose whole tree (gunicorn's workers, the
embedded Redis) is killed however the script ends: an error, Ctrl-C, SIGTERM.
"""
from __future__ import annotations

import argparse
import os

from _harness import CanvasProcess, cpu_note, load, median


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ready-timeout", type=float, default=120.0, help="seconds for the server to be ready")
    args = parser.parse_args()
    # One key's flood would pass the default limit per key within the run: counted, never reached (unless given).
    extra = {"CANVAS_BENCHMARK_ENDPOINTS": "1",
             "CANVAS_RATE_LIMIT_PER_KEY": "1000000000", "CANVAS_RATE_LIMIT_PER_ORGANIZATION": "1000000000"}
    for name in ("CANVAS_DATABASE_URL", "CANVAS_REDIS_URL", "CANVAS_LOG_FORMAT", "CANVAS_METRICS_ENABLED",
                 "CANVAS_RATE_LIMIT_PER_KEY", "CANVAS_RATE_LIMIT_PER_ORGANIZATION", "CANVAS_API_WORKERS",
                 "CANVAS_API_THREADS"):
        if os.environ.get(name):
            extra[name] = os.environ[name]
    with CanvasProcess("api", extra, ready_timeout=args.ready_timeout) as server:
        keys = server.create_org()
        headers = {"Consumer": keys["consumer"], "SecretKey": keys["secretKey"]}
        baseline_path = f"/bench/baseline?id={keys['organizationId']}"
        load(server.port, baseline_path, {}, 2, args.concurrency, "warm-up")
        baseline_rates, auth_rates = [], []
        for round_number in range(1, args.rounds + 1):
            # Alternate the two in every round so machine noise hits both alike.
            base = load(server.port, baseline_path, {}, args.seconds, args.concurrency, f"baseline r{round_number}")
            auth = load(server.port, "/api/Authenticate", headers, args.seconds, args.concurrency,
                        f"Authenticate r{round_number}")
            print(base.line())
            print(auth.line())
            baseline_rates.append(base.rate)
            auth_rates.append(auth.rate)
    ratio = median(auth_rates) / median(baseline_rates)
    database = "PostgreSQL" if "CANVAS_DATABASE_URL" in extra else "SQLite (embedded)"
    workers = extra.get("CANVAS_API_WORKERS", "default count of")
    threads = extra.get("CANVAS_API_THREADS", "default")
    print(f"\n{cpu_note()}, {database}, {workers} gunicorn workers, threads per worker: {threads}, "
          f"{args.concurrency} concurrent clients")
    print(f"median baseline {median(baseline_rates):.0f} req/s, median Authenticate {median(auth_rates):.0f} req/s, "
          f"ratio {ratio:.2f} (goal >= 0.80)")


if __name__ == "__main__":
    main()
