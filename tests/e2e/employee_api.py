"""A Quinyx-shaped employee API for large-data tests: GET /employees?page=&pageSize= with an X-Api-Key header,
answering a JSON array of generated employees, so a million records cost no memory and no fixture file.

In a thread of the test process (EmployeeApi), or alone in a process of its own so that it does not share the
caller's GIL (`python -m tests.e2e.employee_api --total N --api-key K [--cache-pages]`, which prints "PORT <n>"
when ready).
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

EMPLOYEES_PATH = "/quinyx/employees"
COLUMNS = ("id", "badgeNo", "firstName", "lastName", "email", "unit", "employedSince", "hourlyRate", "active")


def employee(number: int) -> dict:
    return {"id": number, "badgeNo": f"B{number:07d}", "firstName": "Ann", "lastName": f"Archer-{number % 977}",
            "email": f"employee{number}@example.com", "unit": f"Unit {number % 50}", "employedSince": "2019-04-01",
            "hourlyRate": 150.5 + number % 100, "active": number % 7 != 0}


def page_body(page: int, size: int, total: int) -> bytes:
    """Page `page` (from 1) of `total` employees, `size` per page; past the end an empty array ends the paging."""
    first = (page - 1) * size + 1
    return json.dumps([employee(number) for number in range(first, min(total, page * size) + 1)]).encode()


class PageCache(dict):
    """Page bodies kept once generated: a benchmark warms it up, so that generating JSON costs the server nothing
    while the clients it compares are measured."""

    def body(self, page: int, size: int, total: int) -> bytes:
        key = (page, size)
        if key not in self:
            self[key] = page_body(page, size, total)
        return self[key]


def _handler_class(total: int, api_key: str, cache: PageCache | None) -> type[BaseHTTPRequestHandler]:
    def body(page: int, size: int) -> bytes:
        return cache.body(page, size, total) if cache is not None else page_body(page, size, total)

    class EmployeeHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: clients reuse one connection for every page

        def do_GET(self):  # noqa: N802 - http.server's name
            url = urlsplit(self.path)
            if url.path != EMPLOYEES_PATH:
                return self._answer(404, b'{"error": "not found"}')
            if self.headers.get("X-Api-Key") != api_key:
                return self._answer(401, b'{"error": "unknown key"}')
            query = parse_qs(url.query)
            return self._answer(200, body(int(query["page"][0]), int(query["pageSize"][0])))

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:  # the access log would flood the output
            pass

    return EmployeeHandler


class EmployeeApi:
    """The API on 127.0.0.1, on a free port, served from a thread."""

    def __init__(self, total: int, api_key: str, cache_pages: bool = False):
        handler = _handler_class(total, api_key, PageCache() if cache_pages else None)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> "EmployeeApi":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total", type=int, required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--cache-pages", action="store_true", help="keep every page body once generated")
    args = parser.parse_args()
    api = EmployeeApi(args.total, args.api_key, args.cache_pages)
    print(f"PORT {api.port}", flush=True)
    api.server.serve_forever(0.05)


if __name__ == "__main__":
    sys.exit(main())
