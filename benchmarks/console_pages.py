"""How long the web console's pages take with 10,000 runs in the account (and as many workflows, accounts,
registered applications and templates; issue 20: every page under 300 ms server-side), as ratios to Authenticate and
to the API's own runs list in the same run.

    .venv/bin/python benchmarks/console_pages.py [--sizes 10000] [--rounds 5] [--postgres]

The rows and the database are list_timings.py's (its Platform and Seeder: runs of one workflow of the Admin, one in
a hundred Failed); the Admin signs in to the console through its pages, then each page is requested through the
Flask test client in this process (the whole WSGI app: session, CSRF token, queries, Jinja rendering).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from list_timings import TEMPLATE_ID, Platform, Seeder, analyse, bench_main, timed  # noqa: E402

PASSWORD = "benchmark password"


def signed_in_client(platform: Platform, organization):  # noqa: ANN001, ANN201
    from canvas.accounts import service as accounts
    from canvas.console import service as console
    from datetime import timedelta

    app = platform.app
    with app.test_request_context(), platform.services.db.transaction() as session:
        token = accounts.create_activation_token(session, organization.account_id, timedelta(hours=1))
        account = console.set_password_with_token(session, token, PASSWORD, PASSWORD)
        email = account.email
    client = app.test_client()
    form = client.get("/console/sign-in").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    answer = client.post("/console/sign-in", data={"email": email, "password": PASSWORD, "csrf_token": csrf})
    assert answer.status_code == 302, answer.get_data(as_text=True)[:300]
    return client


def measure(platform: Platform, sizes: list[int], rounds: int) -> list[tuple[str, int, float, float]]:
    organization, _email = platform.create_organization()
    api_headers = {"Consumer": organization.consumer, "SecretKey": organization.secret_key}
    seeder = Seeder(platform, organization)
    client = signed_in_client(platform, organization)
    results = []
    for size in sizes:
        seconds = seeder.grow_to(size)
        analyse(platform)
        print(f"{size:>7} runs: inserted in {seconds:.1f} s", flush=True)
        last = max(1, -(-size // 50))
        some_run = client.get("/console/runs").get_data(as_text=True)
        run_path = re.search(r'href="(/console/runs/[0-9a-f-]{36})"', some_run).group(1)
        cases = [("Authenticate (baseline)", "/api/Authenticate", api_headers),
                 ("API WorkflowRuns, first page", f"/api/WorkflowRuns?workflowId={seeder.first_workflow}"
                                                  f"&page=1&pageSize=50", api_headers),
                 ("console runs, first page", "/console/runs", {}),
                 ("console runs, middle page", f"/console/runs?page={(last + 1) // 2}", {}),
                 ("console runs, last page", f"/console/runs?page={last}", {}),
                 ("console runs, newest first", "/console/runs?order=newest", {}),
                 ("console runs, Failed only", "/console/runs?status=Failed", {}),
                 ("console run detail", run_path, {})]
        workflow = f"/console/workflows/{seeder.first_workflow}"  # the workflow with every run
        cases += [(f"console {name}", path, {}) for name, path in (
            ("workflows, first page", "/console/workflows"), ("workflows, last page", f"/console/workflows?page={last}"),
            ("workflow detail", workflow), ("schedule", f"{workflow}/schedule"), ("ledger", f"{workflow}/occurrences"),
            ("run form", f"{workflow}/run"), ("applications, first page", "/console/applications"),
            ("applications, last page", f"/console/applications?page={last}"),
            ("application catalog", "/console/applications/catalog"), ("templates, first page", "/console/templates"),
            ("templates, last page", f"/console/templates?page={last}"),
            ("template detail", f"/console/templates/{TEMPLATE_ID}"),
            ("instantiate form", f"/console/templates/{TEMPLATE_ID}/instantiate"),
            ("accounts, first page", "/console/accounts"), ("accounts, last page", f"/console/accounts?page={last}"),
            ("health", "/console/health"))]
        for label, path, headers in cases:
            best, middle = timed(client, path, headers, rounds)
            results.append((label, size, best, middle))
            print(f"  {label:<32} min {best:8.1f} ms   median {middle:8.1f} ms", flush=True)
    return results


def main() -> None:
    bench_main(measure, "10000", "page | runs")

if __name__ == "__main__":
    main()
