"""What graphs cost and what parallel branches give, measured in the same run with the workers of
benchmarks/run_throughput.py (`canvas worker` processes):

(a) per-block cost, one worker: a 20-block plain chain of no-op blocks against the same 20 blocks stored as a linear
    graph (every entry names the one before it in `inputs`), with a 1-block run as reference and a 5-block chain
    between (issue 18's goal: a 20-block run's cost per block within 1.2x a 1-block run's). A run's cost per block
    is (run date_started -> date_finished) / blocks; the figure is the median over the runs.
(b) a fan-out (a no-op start block -> 10 no-op children) with 2 workers and with 1: runs/s over a burst (runs /
    (last run finished - first run queued)) and the median run duration in that burst, and the median duration of
    runs sent one at a time (no backlog).

    .venv/bin/python benchmarks/graph_runs.py [--runs 30] [--probes 10] [--worker-class simple|fork]

Embedded defaults (SQLite + embedded Redis) unless CANVAS_DATABASE_URL / CANVAS_REDIS_URL are set.
Goal (graphs issue): per-block cost of the linear graph <= 1.2 x the plain chain's.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _harness: it puts the project on the path too

from _harness import cpu_note  # noqa: E402
from redis import Redis  # noqa: E402
from rq import Queue  # noqa: E402
from run_throughput import Environment, _dispatch, _wait_until_finished, start, stop  # noqa: E402
from sqlalchemy import select  # noqa: E402

from canvas.settings import redis_url  # noqa: E402

SHORT_CHAIN_BLOCKS, CHAIN_BLOCKS, FAN_OUT = 5, 20, 10


def noop(name: str) -> dict:
    return {"uniqueBlockId": str(uuid.uuid4()), "blockName": name, "block": "noop", "application": None,
            "variables": {}}


def plain_chain(blocks: int) -> list[dict]:
    """Every workflow made before graphs: no entry names its inputs."""
    return [noop(f"No-op {n}") for n in range(1, blocks + 1)]


def linear_graph(blocks: int) -> list[dict]:
    """The same path stored as a graph: the first entry starts it, every other names the one before it."""
    chain = plain_chain(blocks)
    for previous, entry in zip([None, *chain], chain):
        entry["inputs"] = [] if previous is None else [{"from": previous["uniqueBlockId"]}]
    return chain


def fan_out(children: int) -> list[dict]:
    start_block = {**noop("Start"), "inputs": []}
    return [start_block, *({**noop(f"Branch {n}"), "inputs": [{"from": start_block["uniqueBlockId"]}]}
                           for n in range(1, children + 1))]


class GraphEnvironment(Environment):
    def workflows_of(self, make_chain, count: int) -> list:  # noqa: ANN001
        """`count` workflows, each with its own chain (fresh block ids): one run per workflow at a time."""
        from canvas.models import Account, Workflow

        with self.services.db.transaction() as session:
            account = session.get(Account, self.account_id)
            rows = [Workflow(account_id=account.id, organization_id=account.organization_id, name=f"graph bench {n}",
                             chain=make_chain(), chain_overrides=[]) for n in range(count)]
            session.add_all(rows)
        return rows


def run_times(environment: Environment, run_ids: list) -> list:
    """(date_queued, date_started, date_finished, status) of each run."""
    from canvas.models import WorkflowRun

    with environment.services.db.sessions() as session:
        return list(session.execute(select(WorkflowRun.date_queued, WorkflowRun.date_started,
                                           WorkflowRun.date_finished, WorkflowRun.status)
                                    .where(WorkflowRun.id.in_(run_ids))))


def seconds(rows: list) -> list[float]:
    return [(finished - started).total_seconds() for _, started, finished, _ in rows]


def succeeded(rows: list) -> int:
    return sum(1 for *_, status in rows if status == "Succeeded")


def wait_for_empty_queue(environment: Environment, timeout: float = 120) -> None:
    """Block jobs whose run's worker took them back stay queued until a worker drops them: let the workers do that
    before they are stopped, so the next figure does not pay for them."""
    from canvas.queueing.keys import RUN_QUEUE

    queue = Queue(RUN_QUEUE, connection=Redis.from_url(redis_url(environment.settings)))
    deadline = time.time() + timeout
    while queue.count and time.time() < deadline:
        time.sleep(0.05)


def with_workers(environment: Environment, worker_class: str, workers: int, measure):  # noqa: ANN001, ANN201
    command = [sys.executable, "-m", "canvas", "worker", "--worker-class", worker_class]
    processes = start(command, environment.env(), workers)
    time.sleep(4)  # workers up and listening
    try:
        return measure()
    finally:
        wait_for_empty_queue(environment)
        stop(processes)


def per_block_costs(environment: GraphEnvironment, runs: int) -> dict[str, dict]:
    """The three kinds dispatched in turns to one worker, which runs them one after the other; the order within a
    turn rotates, so that drift in the machine's speed and what a run leaves behind fall on all of them alike."""
    kinds = {"1-block run": (lambda: plain_chain(1), 1),
             f"{SHORT_CHAIN_BLOCKS}-block chain": (lambda: plain_chain(SHORT_CHAIN_BLOCKS), SHORT_CHAIN_BLOCKS),
             f"{CHAIN_BLOCKS}-block chain": (lambda: plain_chain(CHAIN_BLOCKS), CHAIN_BLOCKS),
             f"{CHAIN_BLOCKS}-node linear graph": (lambda: linear_graph(CHAIN_BLOCKS), CHAIN_BLOCKS)}
    rows = {name: environment.workflows_of(make_chain, runs) for name, (make_chain, _) in kinds.items()}
    run_ids: dict[str, list] = {name: [] for name in kinds}
    names = list(kinds)
    for index in range(runs):
        for name in names[index % len(names):] + names[:index % len(names)]:
            run_ids[name].append(_dispatch(environment, rows[name][index]))
    _wait_until_finished(environment, [run_id for ids in run_ids.values() for run_id in ids])
    figures = {}
    for name, (_, blocks) in kinds.items():
        times = run_times(environment, run_ids[name])
        per_block = [duration * 1000 / blocks for duration in seconds(times)]
        figures[name] = {"ms_per_block": statistics.median(per_block), "ms_per_run": statistics.median(per_block)
                         * blocks, "succeeded": succeeded(times), "runs": len(times)}
    return figures


def fan_out_figures(environment: GraphEnvironment, runs: int, probes: int) -> dict:
    burst_rows = environment.workflows_of(lambda: fan_out(FAN_OUT), runs)
    run_ids = [_dispatch(environment, workflow) for workflow in burst_rows]
    _wait_until_finished(environment, run_ids)
    burst = run_times(environment, run_ids)
    first_queued = min(queued for queued, *_ in burst)
    last_finished = max(finished for _, _, finished, _ in burst)
    alone_ids = []
    for workflow in environment.workflows_of(lambda: fan_out(FAN_OUT), probes):
        alone_ids.append(_dispatch(environment, workflow))
        _wait_until_finished(environment, alone_ids[-1:], poll=0.005)
    alone = run_times(environment, alone_ids)
    return {"rate": len(burst) / (last_finished - first_queued).total_seconds(),
            "burst_ms": statistics.median(seconds(burst)) * 1000, "alone_ms": statistics.median(seconds(alone)) * 1000,
            "succeeded": succeeded(burst) + succeeded(alone), "runs": len(burst) + len(alone)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30, help="runs of each kind (per-block figures, fan-out burst)")
    parser.add_argument("--probes", type=int, default=10, help="fan-out runs sent one at a time, per worker count")
    parser.add_argument("--worker-class", choices=["simple", "fork"], default="simple")
    args = parser.parse_args()
    environment = GraphEnvironment()
    database = "PostgreSQL" if "postgresql" in environment.settings["DATABASE_URL"] else "SQLite (WAL)"
    print(f"{cpu_note()}; {database}; {args.worker_class} workers; {args.runs} runs per figure, "
          f"{args.probes} fan-out runs one at a time")
    try:
        costs = with_workers(environment, args.worker_class, 1, lambda: per_block_costs(environment, args.runs))
        fans = {workers: with_workers(environment, args.worker_class, workers,
                                      lambda: fan_out_figures(environment, args.runs, args.probes))
                for workers in (2, 1)}
    finally:
        environment.close()

    print(f"\n(a) per-block cost, 1 worker (median over {args.runs} runs each; run date_started -> date_finished)")
    print(f"  {'workflow':<26} {'ms/block':>9} {'ms/run':>9}  succeeded")
    for name, figure in costs.items():
        print(f"  {name:<26} {figure['ms_per_block']:9.2f} {figure['ms_per_run']:9.1f}  "
              f"{figure['succeeded']}/{figure['runs']}")
    chain, graph = costs[f"{CHAIN_BLOCKS}-block chain"], costs[f"{CHAIN_BLOCKS}-node linear graph"]
    one, short = costs["1-block run"], costs[f"{SHORT_CHAIN_BLOCKS}-block chain"]
    print(f"  ratio graph/chain per block: {graph['ms_per_block'] / chain['ms_per_block']:.2f} (goal <= 1.2); "
          f"per block / 1-block run's: {SHORT_CHAIN_BLOCKS} blocks {short['ms_per_block'] / one['ms_per_block']:.2f}, "
          f"{CHAIN_BLOCKS} blocks {chain['ms_per_block'] / one['ms_per_block']:.2f} (goal <= 1.2)")

    print(f"\n(b) fan-out: start -> {FAN_OUT} parallel no-op branches ({args.runs} runs in a burst, "
          f"{args.probes} one at a time)")
    print(f"  {'workers':<8} {'runs/s':>8} {'burst median ms':>16} {'alone median ms':>16}  succeeded")
    for workers, figure in fans.items():
        print(f"  {workers:<8} {figure['rate']:8.1f} {figure['burst_ms']:16.1f} {figure['alone_ms']:16.1f}  "
              f"{figure['succeeded']}/{figure['runs']}")
    print(f"  ratio 2 workers / 1: runs/s {fans[2]['rate'] / fans[1]['rate']:.2f}, "
          f"median duration in the burst {fans[2]['burst_ms'] / fans[1]['burst_ms']:.2f}, "
          f"alone {fans[2]['alone_ms'] / fans[1]['alone_ms']:.2f}")


if __name__ == "__main__":
    main()
