"""The Flask application factory behind `canvas.create_app`."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask
from flask_smorest import Api
from werkzeug.middleware.proxy_fix import ProxyFix

from canvas.auth.resolver import resolve_canvas_principal
from canvas.console import outside_console, register_console
from canvas.extensions import Services, init_services
from canvas.observability.access_log import init_request_logging
from canvas.openapi import (
    SWAGGER_UI_ASSETS_PATH,
    DocumentedOnceApi,
    TruthfulResponsesPlugin,
    swagger_ui_assets,
)
from canvas.ratelimits import (
    counting_auth_failures,
    enforce_rate_limits,
    init_rate_limits,
)
from canvas.settings import load_settings
from canvas.v2.auth import resolve_v2_principal
from canvas.v2.jsonapi import check_acceptable, refuse_unknown_query_parameters
from canvas.web import (
    PATH_CONVERTERS,
    CanvasFlask,
    CaseInsensitiveApiPaths,
    DrainedRequestBodies,
    RequestJSONProvider,
    check_request_body,
    refuse_bad_path_and_query_values,
    register_error_handlers,
)

API_SPEC_OPTIONS = {
    "info": {"description": "Canvas-compatible workflow-template orchestrator. Canvas dialect under /api, "
                            "JSON:API flows under /v2."},
    "components": {
        "securitySchemes": {
            "Consumer": {"type": "apiKey", "in": "header", "name": "Consumer"},
            "SecretKey": {"type": "apiKey", "in": "header", "name": "SecretKey"},
            "ManagedAccountId": {"type": "apiKey", "in": "header", "name": "ManagedAccountId"},
            "BasicAuth": {"type": "http", "scheme": "basic", "description": "v2: account e-mail and API key"},
        }
    },
    "security": [{"Consumer": [], "SecretKey": []}],
}


def build_app(config: Mapping[str, Any] | None = None) -> Flask:
    settings = load_settings(config)
    app = CanvasFlask("canvas")
    app.url_map.strict_slashes = False  # `/v2/flows/` (as the seed writes some URLs) is `/v2/flows`, not a 404
    app.json = RequestJSONProvider(app)  # request.get_json uses the one request decoder
    app.url_map.converters.update(PATH_CONVERTERS)  # before any rule is added: they use them
    app.config.update(
        MAX_CONTENT_LENGTH=settings["MAX_REQUEST_BYTES"],
        JSON_SORT_KEYS=False,
        API_TITLE="Canvas",
        API_VERSION="1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL=SWAGGER_UI_ASSETS_PATH + "/",  # same origin: /docs works offline
        API_SPEC_OPTIONS=API_SPEC_OPTIONS,
        CANVAS_SETTINGS=settings,
    )
    app.json.sort_keys = False
    services = Services(settings)
    services.application_catalog  # noqa: B018 - load now: never serve on a broken or half-loaded catalog
    init_services(app, services)
    init_rate_limits(app, settings)
    api = DocumentedOnceApi(app, spec_kwargs={"extra_plugins": [TruthfulResponsesPlugin(app)]})
    app.register_blueprint(swagger_ui_assets())
    _register_path_converters(api)
    _register_blueprints(app, api, settings)
    register_error_handlers(app)  # after Api(), whose own HTTPException handler it replaces
    init_request_logging(app)  # first of the request hooks: every answer gets its request id and line
    app.before_request(counting_auth_failures(resolve_canvas_principal))
    app.before_request(counting_auth_failures(resolve_v2_principal))
    app.before_request(enforce_rate_limits)  # right after authentication: a refused request costs little
    app.before_request(check_acceptable)
    app.before_request(refuse_unknown_query_parameters)
    app.before_request(refuse_bad_path_and_query_values)
    app.before_request(outside_console(check_request_body))  # the console's forms are not JSON
    app.wsgi_app = DrainedRequestBodies(CaseInsensitiveApiPaths(app.wsgi_app, app))
    if settings["TRUSTED_PROXY_COUNT"]:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings["TRUSTED_PROXY_COUNT"])
    return app


def _register_path_converters(api: Api) -> None:
    """How the OpenAPI document describes the path parameters of canvas.web's converters."""
    documented = {"id": {"type": "string", "format": "uuid"},
                  "position": {"type": "integer", "format": "int32", "minimum": 1}}
    for name, schema in documented.items():
        api.register_converter(PATH_CONVERTERS[name], lambda converter, schema=schema: dict(schema))


def _register_blueprints(app: Flask, api: DocumentedOnceApi, settings: Mapping[str, Any]) -> None:
    from canvas.accounts.resources import blp as accounts_blp
    from canvas.applications.resources import blp as applications_blp
    from canvas.audit.resources import blp as audit_blp
    from canvas.catalog.resources import blp as templates_blp
    from canvas.health import blp as health_blp
    from canvas.help.resources import blp as help_blp
    from canvas.runs.resources import blp as runs_blp
    from canvas.schedules.resources import blp as schedules_blp
    from canvas.v2 import blueprints as v2_blueprints
    from canvas.workflows.resources import blp as workflows_blp

    api.register_documented([help_blp, accounts_blp, applications_blp, templates_blp, workflows_blp, runs_blp,
                             schedules_blp, audit_blp, *v2_blueprints()])
    app.register_blueprint(health_blp)  # operational, not part of the documented API
    register_console(app)  # the web console: pages, not part of the documented API either
    if settings.get("METRICS_ENABLED"):
        from canvas.observability import metrics_web

        app.register_blueprint(metrics_web.blp)  # /metrics: operational too, outside the documented API
        metrics_web.instrument(app)
    if settings.get("BENCHMARK_ENDPOINTS"):
        from canvas.benchmark_endpoints import blp as bench_blp

        app.register_blueprint(bench_blp)
