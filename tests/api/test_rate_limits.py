"""Rate limits through the Flask test client: per API key, per organization, failed authentications per address,
webhook calls per flow; 429 in each dialect's error shape with an honest Retry-After; 0 switches a limit off; Redis
unreachable lets requests through."""
from __future__ import annotations

import logging
import math
import time

import pytest

from canvas.ratelimits.counters import Counters, Limit, RateLimits
from canvas.ratelimits.hooks import request_limits
from canvas.settings import SettingsError
from tests.api.test_v2_support import JSONAPI, V2, basic_headers

CANVAS_PROBE, V2_PROBE = "/api/Authenticate", "/v2/users/me"
WINDOW = 60


@pytest.fixture()
def app(make_app, request):
    """The app with the limits the test is parametrized with (`indirect`), else the defaults."""
    return make_app(**getattr(request, "param", {}))


def limits(**settings):
    return pytest.mark.parametrize("app", [settings], indirect=True,
                                   ids=["-".join(f"{name}={value}" for name, value in settings.items())])


@pytest.fixture()
def frozen_clock(app):
    """The app's rate-limit clock, held at 0.3 s into a window that starts within the next minute (counters in Redis
    expire with their window: it must not lie in the past), moved by the test."""
    counters = request_limits(app).counters
    clock = {"now": (math.floor(time.time() / WINDOW) + 1) * WINDOW + 0.3}
    counters.clock = lambda: clock["now"]
    return clock


def assert_canvas_429(response) -> int:
    assert response.status_code == 429, response.json
    assert set(response.json) == {"State", "Msg"} and response.json["State"] == 429
    return int(response.headers["Retry-After"])


def assert_v2_429(response) -> int:
    assert response.status_code == 429, response.json
    assert response.mimetype == JSONAPI
    (error,) = response.json["errors"]
    assert (error["status"], error["title"]) == ("429", "Too Many Requests") and "Retry-After" in error["detail"]
    return int(response.headers["Retry-After"])


# --- per API key -----------------------------------------------------------------------------------------------------

@limits(RATE_LIMIT_PER_KEY=3)
def test_a_key_over_its_limit_is_answered_429_in_the_canvas_shape_until_its_window_ends(client, org, frozen_clock):
    assert [client.get(CANVAS_PROBE, headers=org.admin_headers).status_code for _ in range(3)] == [200] * 3
    refused = client.get(CANVAS_PROBE, headers=org.admin_headers)
    assert assert_canvas_429(refused) == WINDOW  # 0.3 s into the window: 59.7 s left, rounded up
    assert "this API key" in refused.json["Msg"] and org.admin_headers["SecretKey"] not in refused.json["Msg"]
    frozen_clock["now"] += WINDOW - 1  # 0.7 s before the window ends: still refused, as Retry-After said
    assert_canvas_429(client.get(CANVAS_PROBE, headers=org.admin_headers))
    frozen_clock["now"] += 1  # Retry-After seconds after the refusal: a fresh window
    assert client.get(CANVAS_PROBE, headers=org.admin_headers).status_code == 200


@limits(RATE_LIMIT_PER_KEY=2)
def test_the_key_limit_is_per_account_and_shared_by_both_dialects(app, client, org, frozen_clock):
    _, other_headers = org.add_account()
    v2_headers = basic_headers(app, org.admin_id, org.admin_headers)
    assert client.get(CANVAS_PROBE, headers=org.admin_headers).status_code == 200
    assert client.get(V2_PROBE, headers=v2_headers).status_code == 200
    assert_v2_429(client.get(V2_PROBE, headers=v2_headers))
    assert_canvas_429(client.get(CANVAS_PROBE, headers=org.admin_headers))
    assert client.get(CANVAS_PROBE, headers=other_headers).status_code == 200  # another account's keys: own count


# --- per organization ------------------------------------------------------------------------------------------------

@limits(RATE_LIMIT_PER_KEY=0, RATE_LIMIT_PER_ORGANIZATION=4)
def test_an_organization_limit_counts_the_sum_over_its_accounts(app, client, org, make_org, frozen_clock):
    _, second = org.add_account()
    for headers in (org.admin_headers, second, org.admin_headers, second):
        assert client.get(CANVAS_PROBE, headers=headers).status_code == 200
    refused = client.get(CANVAS_PROBE, headers=second)
    assert assert_canvas_429(refused) == WINDOW and "this organization" in refused.json["Msg"]
    v2_headers = basic_headers(app, org.admin_id, org.admin_headers)
    assert_v2_429(client.get(V2_PROBE, headers=v2_headers))
    other_org = make_org("Other")
    assert client.get(CANVAS_PROBE, headers=other_org.admin_headers).status_code == 200


# --- failed authentications per address ------------------------------------------------------------------------------

@limits(AUTH_FAILURE_LIMIT=3, AUTH_FAILURE_WINDOW_SECONDS=300)
def test_repeated_authentication_failures_from_one_address_are_answered_429(app, client, org):
    bad = {**org.admin_headers, "SecretKey": "wrong"}
    assert [client.get(CANVAS_PROBE, headers=bad).status_code for _ in range(3)] == [401] * 3
    retry_after = assert_canvas_429(client.get(CANVAS_PROBE, headers=bad))
    assert 1 <= retry_after <= 300
    assert_v2_429(client.get(V2_PROBE, headers={"Authorization": "Basic bm9ib2R5OndvcnN0"}))
    # the address is refused even with good keys (a guess that hits is no use), other addresses are not
    assert_canvas_429(client.get(CANVAS_PROBE, headers=org.admin_headers))
    v2_headers = basic_headers(app, org.admin_id, org.admin_headers)
    assert_v2_429(client.get(V2_PROBE, headers=v2_headers))
    elsewhere = {"REMOTE_ADDR": "192.0.2.10"}
    assert client.get(CANVAS_PROBE, headers=org.admin_headers, environ_base=elsewhere).status_code == 200
    assert client.get(CANVAS_PROBE, headers=bad, environ_base=elsewhere).status_code == 401


@limits(AUTH_FAILURE_LIMIT=2)
def test_successful_authentications_do_not_count_as_failures(client, org):
    assert [client.get(CANVAS_PROBE, headers=org.admin_headers).status_code for _ in range(5)] == [200] * 5
    bad = {**org.admin_headers, "SecretKey": "wrong"}
    assert [client.get(CANVAS_PROBE, headers=bad).status_code for _ in range(3)] == [401, 401, 429]


@limits(AUTH_FAILURE_LIMIT=0)
def test_auth_failure_limit_0_never_refuses_an_address(client, org):
    bad = {**org.admin_headers, "SecretKey": "wrong"}
    assert {client.get(CANVAS_PROBE, headers=bad).status_code for _ in range(150)} == {401}  # beyond the default 100
    assert client.get(CANVAS_PROBE, headers=org.admin_headers).status_code == 200


# --- webhook calls per flow ------------------------------------------------------------------------------------------

@pytest.mark.usefixtures("clean_run_queue")
@limits(WEBHOOK_RATE_LIMIT_PER_FLOW=2)
def test_webhook_calls_over_the_flow_limit_are_answered_429_and_start_nothing(app, client, org):
    from tests.integration.test_v2_webhooks import add_webhook, webhook_flow

    v2 = V2(app, client, org)
    flow_id = webhook_flow(v2)
    first, second = add_webhook(v2, flow_id), add_webhook(v2, flow_id)  # two hooks of one flow share its limit
    assert client.post(first, json={"n": 1}).status_code == 202
    assert client.post(second, json={"n": 2}).status_code == 409  # a run is active: still a call of the flow
    refused = client.post(first, json={"n": 3})
    assert 1 <= assert_v2_429(refused) <= WINDOW and "this flow's webhooks" in refused.json["errors"][0]["detail"]
    executions = v2.call("GET", "/v2/executions", **{"filter[flow]": flow_id})
    assert len(executions.json["data"]) == 1, executions.json
    other_flow = webhook_flow(v2)
    assert client.post(add_webhook(v2, other_flow), json={"n": 4}).status_code == 202


# --- switching off, settings, outages --------------------------------------------------------------------------------

def test_a_limit_of_0_counts_nothing_in_redis(services):
    counters = Counters(lambda: services.redis, services.settings["REDIS_PREFIX"])
    counters.forget_all()
    off, on = Limit("key", 0, WINDOW), Limit("organization", 1, WINDOW)
    assert [counters.count([(off, "a")]) for _ in range(5)] == [None] * 5
    assert list(services.redis.scan_iter(match=services.settings["REDIS_PREFIX"] + "ratelimit:*")) == []
    assert counters.count([(off, "a"), (on, "o")]) is None
    over = counters.count([(off, "a"), (on, "o")])
    assert over is not None and over.limit == on and 1 <= over.retry_after <= WINDOW
    counters.forget_all()


def test_large_limits_are_counted_in_batches_and_shared_by_processes_within_their_batches(services):
    prefix = services.settings["REDIS_PREFIX"]
    first, second = (Counters(lambda: services.redis, prefix) for _ in range(2))  # two API processes
    first.forget_all()
    limit = Limit("key", 2000, WINDOW)  # batches of 2000 / 500 = 4 events
    assert [first.count([(limit, "k")]) for _ in range(3)] == [None] * 3
    assert list(services.redis.scan_iter(match=prefix + "ratelimit:*")) == []  # no round trip yet
    first.count([(limit, "k")])
    (key,) = services.redis.scan_iter(match=prefix + "ratelimit:key:k:*")
    assert int(services.redis.get(key)) == 4
    refused_at = next(n for n in range(1, 3000) if (first if n % 2 else second).count([(limit, "k")]) is not None)
    events = 4 + refused_at  # never refused before the shared count is over; over by at most a batch per process
    assert 2001 <= events <= 2001 + 2 * 4
    first.forget_all()


@pytest.mark.parametrize("name, value", [("RATE_LIMIT_PER_KEY", -1), ("RATE_LIMIT_WINDOW_SECONDS", 0),
                                         ("AUTH_FAILURE_WINDOW_SECONDS", 0), ("WEBHOOK_RATE_LIMIT_PER_FLOW", 1.5)])
def test_a_bad_limit_setting_stops_the_start_naming_the_variable(base_settings, name, value):
    from canvas.settings import load_settings

    with pytest.raises(SettingsError, match=f"CANVAS_{name}"):
        RateLimits.from_settings(load_settings({**base_settings, name: value}))


def test_limits_are_read_from_canvas_environment_variables(base_settings):
    from canvas.settings import load_settings

    environ = {"CANVAS_RATE_LIMIT_PER_KEY": "0", "CANVAS_AUTH_FAILURE_LIMIT": "7"}
    parsed = RateLimits.from_settings(load_settings(base_settings, environ=environ))
    assert (parsed.per_key.enabled, parsed.auth_failures.per_window) == (False, 7)


def test_redis_unreachable_lets_requests_through_and_is_logged_once(make_app, own_redis, caplog):
    app = make_app(REDIS_URL=own_redis.url, RATE_LIMIT_PER_KEY=1, AUTH_FAILURE_LIMIT=1)
    from tests.conftest import Org

    org = Org(app, "Offline")
    own_redis.stop()
    client = app.test_client()
    with caplog.at_level(logging.WARNING, logger="canvas.ratelimits.counters"):
        answers = [client.get(CANVAS_PROBE, headers=org.admin_headers).status_code for _ in range(3)]
        bad = client.get(CANVAS_PROBE, headers={**org.admin_headers, "SecretKey": "wrong"})
    assert answers == [200] * 3 and bad.status_code == 401
    warnings = [record for record in caplog.records if "rate limits" in record.getMessage()]
    assert len(warnings) == 1 and "Redis is unreachable" in warnings[0].getMessage()


# --- the defaults do not limit ordinary automation -------------------------------------------------------------------

def test_the_defaults_leave_room_for_polling_a_burst_and_a_schemathesis_run():
    from canvas import defaults as d

    polling_per_window = d.DEFAULT_RATE_LIMIT_WINDOW_SECONDS / 0.2
    assert d.DEFAULT_RATE_LIMIT_PER_KEY >= 10 * polling_per_window  # ten runs polled at once, every 200 ms
    assert d.DEFAULT_RATE_LIMIT_PER_KEY >= 200 + polling_per_window + 2000  # a burst while polling, a schemathesis run
    assert d.DEFAULT_RATE_LIMIT_PER_ORGANIZATION >= d.DEFAULT_RATE_LIMIT_PER_KEY


@pytest.mark.usefixtures("clean_run_queue")
def test_defaults_let_a_burst_of_200_run_workflow_calls_and_200_ms_polling_through(app, client, org):
    from tests.api.workflow_helpers import published_template
    from tests.integration.run_helpers import THREE_BLOCKS, chain_template, run

    template_id = published_template(client, org.admin_headers, chain_template(THREE_BLOCKS))
    workflow_ids = [client.post("/api/Workflow", json={"workflowTemplateId": template_id, "applications": {}},
                                headers=org.admin_headers).json for _ in range(200)]
    answers = [run(client, org.admin_headers, workflow_id) for workflow_id in workflow_ids]
    assert [answer.status_code for answer in answers] == [202] * 200
    location = answers[-1].headers["Location"]
    deadline = time.monotonic() + 2.0
    polls = []
    while time.monotonic() < deadline:
        polls.append(client.get(location, headers=org.admin_headers).status_code)
        time.sleep(0.2)
    assert len(polls) >= 9 and set(polls) == {200}


# --- the OpenAPI document says so ---------------------------------------------------------------------------------------

def test_the_openapi_document_lists_429_with_retry_after_wherever_a_limit_applies(client):
    document = client.get("/openapi.json").json
    operations = [(path, method, operation) for path, item in document["paths"].items()
                  for method, operation in item.items() if isinstance(operation, dict) and "responses" in operation]
    answering_429 = [(path, method) for path, method, operation in operations if "429" in operation["responses"]]
    for path, method, operation in operations:
        limited = "401" in operation["responses"] or path.startswith("/v2/hooks/")  # authenticated, or per flow
        assert ("429" in operation["responses"]) == limited, (method, path)
        if limited:
            assert "Retry-After" in operation["responses"]["429"]["headers"], (method, path)
    assert ("/v2/hooks/{token}", "post") in answering_429 and ("/api/Authenticate", "get") in answering_429
    assert len(answering_429) < len(operations)  # endpoints without authentication have no limit to meet
