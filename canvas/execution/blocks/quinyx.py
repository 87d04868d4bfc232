"""Quinyx "API - Get Employees" (application QUIN, credentials `apikey` and `environment` live|test).

The Canvas document shows the block's name and variables (apiKeys: [], badgeNo: null) but not the API it calls,
so this block ASSUMES a JSON REST API:
- GET <base>/employees, where <base> is the variable `baseUrl` when set (tests point it at a local server; it also
  serves a proxy or another API version), else ENVIRONMENT_URLS[environment];
- the API key travels in the `X-Api-Key` header; paging by `page` (from 1) and `pageSize`, until an empty page;
- the answer is a JSON array of employee objects (or, with `recordsPath`, an object holding one);
- `badgeNo`, when set, is sent as the query parameter `badgeNo` (one employee);
- `apiKeys`: Quinyx hands out one key per unit, so the employees of every listed key are fetched one key after the
  other; empty means the application's own `apikey`. They are secrets in a variable, as the document has them:
  they are kept out of every message and log line.
"""
from __future__ import annotations

from collections.abc import Mapping

from canvas.execution.blocks._net_common import credential_redactor, credentials_of
from canvas.execution.blocks._net_http import HttpCall, HttpClient
from canvas.execution.blocks._net_paging import Paging
from canvas.execution.blocks._net_rest import LIMIT_VARIABLES, limits_of, rest_url, stream_calls
from canvas.execution.blocks.base import Block, VariableSpec
from canvas.execution.context import BlockContext, BlockError
from canvas.execution.data import BlockData, Records
from canvas.execution.registry import register
from canvas.network.rest_auth import ApiKeyHeaderAuth

ENVIRONMENT_URLS = {"live": "https://api.quinyx.com/v1", "test": "https://api-test.quinyx.com/v1"}
API_KEY_HEADER = "X-Api-Key"
EMPLOYEES_PATH = "/employees"
DEFAULT_PAGE_SIZE = 100


@register
class QuinyxGetEmployees(Block):
    key = "quinyx.get_employees"
    title = "API - Get Employees"
    description = "The employees from Quinyx, for the application's API key or each of `apiKeys`."
    application_kind = "rest"
    input_kind = "any"
    output_kind = "records"
    variables = {
        "apiKeys": VariableSpec("array", default=[], description="Further Quinyx API keys; empty: the application's."),
        "badgeNo": VariableSpec("any", description="Only the employee with this badge number."),
        "baseUrl": VariableSpec("string", default="", description="Overrides the environment's API url."),
        "pageSize": VariableSpec("integer", default=DEFAULT_PAGE_SIZE, description="Employees per page."),
        "recordsPath": VariableSpec("string", default="", description="Dotted path to the employees in an answer."),
        **LIMIT_VARIABLES,
    }

    def run(self, context: BlockContext, data: BlockData) -> Records:
        credentials = credentials_of(context, self.key)
        keys = api_keys(context.variables.get("apiKeys"), credentials)
        url = rest_url({"baseUrl": quinyx_base_url(context.variables.get("baseUrl"), credentials)}, EMPLOYEES_PATH)
        badge = context.variables.get("badgeNo")
        params = {} if badge in (None, "") else {"badgeNo": str(badge)}
        calls = [HttpCall("GET", url, params=params, auth=ApiKeyHeaderAuth(API_KEY_HEADER, key)) for key in keys]
        paging = Paging(style="page", page_param="page", size_param="pageSize",
                        page_size=context.variables.get("pageSize") or DEFAULT_PAGE_SIZE, first_page=1)
        client = HttpClient(context, limits_of(context), credential_redactor(credentials, keys))
        return Records(stream_calls(context, client, calls, paging, context.variables.get("recordsPath") or ""),
                       json_native=True)


def api_keys(listed: object, credentials: Mapping) -> list[str]:
    if listed is not None and not isinstance(listed, (list, tuple)):
        raise BlockError("variable 'apiKeys' must be an array of API keys")
    keys = [str(key).strip() for key in listed or [] if str(key or "").strip()]
    if keys:
        return keys
    own = str(credentials.get("apikey") or "").strip()
    if not own:
        raise BlockError("no Quinyx API key: the application's apikey is empty and so is the variable 'apiKeys'")
    return [own]


def quinyx_base_url(override: object, credentials: Mapping) -> str:
    if isinstance(override, str) and override.strip():
        return override.strip()
    environment = str(credentials.get("environment") or "").strip().lower()
    if environment not in ENVIRONMENT_URLS:
        raise BlockError("the application's environment must be live or test")
    return ENVIRONMENT_URLS[environment]
