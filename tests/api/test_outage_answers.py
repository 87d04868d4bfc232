"""While the database is unreachable (a relay to PostgreSQL cut), the API answers 503 in each dialect's error shape
(the console with its page) with Retry-After, not a 500 with a reference: an outage is not a bug, and trying again
is the cure."""
from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from tests.api.test_v2_support import basic_headers
from tests.conftest import Org
from tests.console.conftest import signed_in
from tests.servers.tcp_proxy import TcpProxy


@pytest.fixture
def proxy(postgres_database_url):
    url = make_url(postgres_database_url)
    with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as relay:
        yield relay


@pytest.fixture
def proxied_app(proxy, postgres_database_url, make_app):  # the relay goes last: the tables are emptied through it
    url = make_url(postgres_database_url).set(host="127.0.0.1", port=proxy.port)
    app = make_app(DATABASE_URL=url.render_as_string(hide_password=False))
    yield app
    proxy.restore()


def test_every_dialect_answers_503_while_the_database_is_away(proxied_app, proxy):
    client, org = proxied_app.test_client(), Org(proxied_app, "Outage")
    v2 = basic_headers(proxied_app, org.admin_id, org.admin_headers)
    browser = signed_in(proxied_app, org.admin_id)
    assert client.get("/api/Workflows", headers=org.admin_headers).status_code == 200
    assert browser.get("/console/workflows").status_code == 200
    proxy.cut()
    canvas = client.get("/api/Workflows", headers=org.admin_headers)
    assert (canvas.status_code, canvas.headers.get("Retry-After")) == (503, "5")
    assert canvas.json == {"State": 503, "Msg": "The service cannot reach its database at the moment; try again shortly"}
    flows = client.get("/v2/flows", headers=v2)
    assert flows.status_code == 503 and flows.mimetype == "application/vnd.api+json"
    assert flows.json["errors"][0]["status"] == "503" and "database" in flows.json["errors"][0]["detail"]
    page = browser.get("/console/workflows")
    assert (page.status_code, page.mimetype, page.headers.get("Retry-After")) == (503, "text/html", "5")
    assert "The service cannot reach its database at the moment; try again shortly" in page.get_data(as_text=True)
    proxy.restore()
    assert client.get("/api/Workflows", headers=org.admin_headers).status_code == 200
    assert browser.get("/console/workflows").status_code == 200


def test_a_session_that_fails_to_close_does_not_change_the_answer(client, org, monkeypatch):
    """The answer is decided when the request's session is closed; a connection that died meanwhile (closing
    rolls back on it) is logged and dropped, not turned into a 500 page."""
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.orm import Session

    def dead_connection(self):  # noqa: ANN001
        raise OperationalError("ROLLBACK", {}, Exception("terminating connection due to administrator command"))

    monkeypatch.setattr(Session, "close", dead_connection)
    answer = client.get("/api/Workflows", headers=org.admin_headers)
    assert answer.status_code == 200
    assert answer.json == []
