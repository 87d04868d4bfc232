"""benchmarks/api_auth.py with the operations features on against off: Authenticate under concurrent load in two
`canvas api` servers. "off": metrics off, text logs, every rate limit at 0. "on": Prometheus metrics, JSON logs and
rate limits counted on every request but set too high to refuse any (`--feature` turns on only one of them).

    .venv/bin/python benchmarks/api_auth_operations.py [--feature all|metrics|logs|limits] [--seconds 8]
        [--concurrency 8] [--rounds 3]

Each round loads both servers one after the other (alternating which goes first) so machine noise hits both alike;
each server's Authenticate rate is also taken relative to its own unauthenticated baseline (/bench/baseline, which
no limit touches), which cancels most of the load other processes put on the machine. Goal: on at most 10 % below
off (ratio >= 0.90). Set CANVAS_DATABASE_URL / CANVAS_REDIS_URL for PostgreSQL and a Redis server.
"""
from __future__ import annotations

import argparse
import os
from contextlib import ExitStack

from _harness import CanvasProcess, cpu_note, load, median

FEATURES = {
    "metrics": ({"CANVAS_METRICS_ENABLED": "false"}, {"CANVAS_METRICS_ENABLED": "true"}),
    "logs": ({"CANVAS_LOG_FORMAT": "text"}, {"CANVAS_LOG_FORMAT": "json"}),
    "limits": ({"CANVAS_RATE_LIMIT_PER_KEY": "0", "CANVAS_RATE_LIMIT_PER_ORGANIZATION": "0",
                "CANVAS_AUTH_FAILURE_LIMIT": "0"},
               {"CANVAS_RATE_LIMIT_PER_KEY": "1000000000", "CANVAS_RATE_LIMIT_PER_ORGANIZATION": "1000000000",
                "CANVAS_AUTH_FAILURE_LIMIT": "100"}),
}


def settings_of(feature: str) -> tuple[dict, dict]:
    """(off, on) environments: only `feature` differs, or every feature with "all"."""
    off = {name: value for pair in FEATURES.values() for name, value in pair[0].items()}
    on = dict(off)
    for name in FEATURES if feature == "all" else [feature]:
        on.update(FEATURES[name][1])
    return off, on


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--feature", choices=["all", *FEATURES], default="all")
    args = parser.parse_args()
    off, on = settings_of(args.feature)
    common = {"CANVAS_BENCHMARK_ENDPOINTS": "1"}  # the API's default workers and threads unless the environment sets them
    for name in ("CANVAS_DATABASE_URL", "CANVAS_REDIS_URL", "CANVAS_API_WORKERS", "CANVAS_API_THREADS"):
        if os.environ.get(name):
            common[name] = os.environ[name]
    rates: dict[str, list[float]] = {"off": [], "on": []}
    relative: dict[str, list[float]] = {"off": [], "on": []}
    with ExitStack() as stack:
        servers = {name: stack.enter_context(CanvasProcess("api", {**common, **limits}))
                   for name, limits in (("off", off), ("on", on))}
        targets = {name: prepare(server, args.concurrency) for name, server in servers.items()}
        for round_number in range(1, args.rounds + 1):
            order = ["off", "on"] if round_number % 2 else ["on", "off"]
            for name in order:
                port, headers, baseline_path = targets[name]
                base = load(port, baseline_path, {}, args.seconds / 2, args.concurrency, f"baseline {name}")
                auth = load(port, "/api/Authenticate", headers, args.seconds, args.concurrency,
                            f"Authenticate {name} r{round_number}")
                print(base.line())
                print(auth.line())
                rates[name].append(auth.rate)
                relative[name].append(auth.rate / base.rate)
    ratio = median(rates["on"]) / median(rates["off"])
    relative_ratio = median(relative["on"]) / median(relative["off"])
    workers = common.get("CANVAS_API_WORKERS", "the default number of")
    threads = common.get("CANVAS_API_THREADS", "the default")
    print(f"\n{cpu_note()}, {workers} API workers with {threads} threads each, {args.concurrency} clients")
    print(f"feature(s) compared: {args.feature}")
    print(f"median Authenticate: off {median(rates['off']):.0f} req/s, on {median(rates['on']):.0f} req/s, "
          f"ratio {ratio:.2f}; relative to each server's baseline, ratio {relative_ratio:.2f} (goal >= 0.90)")


def prepare(server: CanvasProcess, concurrency: int) -> tuple[int, dict, str]:
    keys = server.create_org()
    headers = {"Consumer": keys["consumer"], "SecretKey": keys["secretKey"]}
    baseline_path = f"/bench/baseline?id={keys['organizationId']}"
    load(server.port, baseline_path, {}, 2, concurrency, "warm-up")
    load(server.port, "/api/Authenticate", headers, 2, concurrency, "warm-up")
    return server.port, headers, baseline_path


if __name__ == "__main__":
    main()
