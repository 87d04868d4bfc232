"""The console's pages: server-rendered, calling the same service functions as the Canvas dialect."""
from __future__ import annotations

import hmac
import posixpath
import secrets
from datetime import datetime, timedelta, timezone
from functools import wraps
from http import HTTPStatus
from urllib.parse import unquote

from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from markupsafe import Markup
from werkzeug.exceptions import HTTPException

from canvas.accounts import service as accounts
from canvas.audit.actor import CONSOLE
from canvas.auth.resolver import check_ip_allowlist, principal_for
from canvas.console import forms
from canvas.console import service as console
from canvas.console.links import CONSOLE_PATH
from canvas.db import end_reading
from canvas.errors import (
    AuthenticationError,
    BadRequestError,
    CanvasError,
    ForbiddenError,
)
from canvas.extensions import db_session, services
from canvas.models import ACTIVE_RUN_STATES, Account
from canvas.ratelimits import check_sign_in_allowed, count_sign_in_failure
from canvas.runs import service as runs
from canvas.runs.compare import compare_outputs
from canvas.runs.downloads import output_download
from canvas.runs.service import RUN_STATES, TRIGGERS
from canvas.web import refuse_unstorable_values
from canvas.workflows import service as workflows

SESSION_COOKIE = "canvas_console_session"
FORM_COOKIE = "canvas_console_form"  # the CSRF token of the forms shown before signing in (double submit)
CSRF_FIELD = "csrf_token"
LIVE_FRAGMENT_HEADER = "X-Console-Fragment"  # console.js asks for the live part of a page only
PUBLIC_ENDPOINTS = {"console.sign_in", "console.forgot_password", "console.set_password", "console.static"}
# Pages the navigation links to, in order: (endpoint, label, only for accounts that manage accounts). A page that
# is not registered is not linked.
NAVIGATION = [("console.runs_list", "Runs", False), ("console.workflows_list", "Workflows", False),
              ("console.templates_list", "Templates", False), ("console.applications_list", "Applications", False),
              ("console.accounts_list", "Accounts", True), ("console.health", "Health", False)]

blp = Blueprint("console", __name__, url_prefix=CONSOLE_PATH, template_folder="templates",
                static_folder="static", static_url_path="/static")


# --- every request ---------------------------------------------------------------------------------------------------

@blp.before_request
def load_signed_in_account():  # noqa: ANN201
    """The browser's session and the Principal it acts as (g.principal, as an API key's request has it: service
    functions and the audit log read it); a page that needs a session sends a signed-out browser to sign in."""
    if request.endpoint == "console.static":  # the stylesheet and the script: the same for everyone
        return None
    session = db_session()
    record = console.session_for(session, request.cookies.get(SESSION_COOKIE))
    g.console_session, g.signed_in = record, None
    if record is not None:
        g.signed_in = session.get(Account, record.account_id)
        g.principal = _principal(session, record, g.signed_in)
        g.audit_actor_kind = CONSOLE  # what the pages change is the signed-in account's doing
    g.csrf_token = record.csrf_token if record else (request.cookies.get(FORM_COOKIE) or secrets.token_urlsafe(32))
    if request.method == "POST":
        _check_csrf(record)
        refuse_unstorable_values(request.form)  # a NUL character reached PostgreSQL and failed there, a 500
    if record is None and request.endpoint not in PUBLIC_ENDPOINTS:
        return redirect(url_for("console.sign_in", next=request.full_path if request.args else request.path))
    return None


def _principal(session, record, signed_in: Account):  # noqa: ANN001, ANN202
    """The IP allowlist (a 403 page) and act-as, by the API's own rules; an act-as target that is no longer
    allowed (deactivated, moved) ends acting as it."""
    check_ip_allowlist(signed_in)
    try:
        return principal_for(session, signed_in, str(record.acting_as_id) if record.acting_as_id else None)
    except ForbiddenError:
        if record.acting_as_id is None:
            raise
        record.acting_as_id = None
        session.commit()
        return principal_for(session, signed_in, None)


def _check_csrf(record) -> None:  # noqa: ANN001
    expected = record.csrf_token if record is not None else request.cookies.get(FORM_COOKIE)
    sent = request.form.get(CSRF_FIELD, "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        abort(400, description="The form was missing its security token or it was out of date. Go back, reload the "
                               "page and send the form again.")


@blp.after_request
def set_cookies(response):  # noqa: ANN001, ANN201
    if request.endpoint == "console.static":
        return response
    if g.get("console_session") is None and g.get("csrf_token") and \
            request.cookies.get(FORM_COOKIE) != g.csrf_token:
        response.set_cookie(FORM_COOKIE, g.csrf_token, **_cookie_options())
    response.headers.setdefault("Cache-Control", "no-store")  # pages show account data
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Content-Security-Policy",
                                "default-src 'self'; frame-ancestors 'none'; form-action 'self'")
    return response


def _cookie_options() -> dict:
    secure = request.is_secure or services().settings["PUBLIC_URL"].lower().startswith("https:")
    return {"httponly": True, "samesite": "Lax", "secure": secure, "path": CONSOLE_PATH}


@blp.context_processor
def console_context() -> dict:
    signed_in = g.get("signed_in")
    manages = signed_in is not None and signed_in.role_enum.may_manage_accounts
    navigation = [(endpoint, label) for endpoint, label, managers_only in NAVIGATION
                  if endpoint in current_app.view_functions and (manages or not managers_only)]
    return {"navigation": navigation, "signed_in": signed_in, "acting_as": _acting_as(),
            "csrf_token": g.get("csrf_token"), "may_act_as": manages}


def _acting_as() -> Account | None:
    record = g.get("console_session")
    if record is None or record.acting_as_id is None:
        return None
    return db_session().get(Account, record.acting_as_id)


@blp.errorhandler(CanvasError)
def canvas_error_page(error: CanvasError):  # noqa: ANN201
    response = render_page("error.html", status=error.status, title="Something went wrong", message=error.message,
                           code=error.status)
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    return response


@blp.errorhandler(HTTPException)
def http_error_page(error: HTTPException):  # noqa: ANN201
    return render_page("error.html", status=error.code or 500, title=error.name, message=error.description,
                       code=error.code)


def error_page(status: int, message: str):  # noqa: ANN201
    """The page of an error no console view handled: an unknown address or method under /console, a bug."""
    return render_page("error.html", status=status, title=HTTPStatus(status).phrase, message=message, code=status)


def render_page(template: str, status: int = 200, **context):  # noqa: ANN201
    return make_response(render_template(f"console/{template}", **context), status)


def form_page(template: str, failure: CanvasError | None, **context):  # noqa: ANN201
    """A form shown again with what the service refused beside its field: 400, as for a value the form got wrong,
    unless the service could not do it at the moment (a 5xx: Redis or the database away), which keeps its status
    and Retry-After, so that an outage reads as one in the access log and to a browser's tools."""
    status = 200 if failure is None else failure.status if failure.status >= 500 else 400
    response = render_page(template, status=status, errors=field_errors(failure) if failure else {}, **context)
    if failure is not None and failure.retry_after is not None:
        response.headers["Retry-After"] = str(failure.retry_after)
    return response


def field_errors(error: CanvasError) -> dict[str, str]:
    """A service error, keyed by the form field it names (the form's own key when it names none)."""
    return {error.field or error.parameter or "form": error.message}


def acting_account_id():  # noqa: ANN201
    return g.principal.account_id


# --- sign-in ---------------------------------------------------------------------------------------------------------

@blp.route("/", strict_slashes=False)
def home():  # noqa: ANN201
    return redirect(url_for("console.runs_list"))


@blp.route("/sign-in", methods=["GET", "POST"])
def sign_in():  # noqa: ANN201
    if g.console_session is not None:
        return redirect(url_for("console.runs_list"))
    errors, email = {}, request.form.get("email", "")
    if request.method == "POST":
        try:
            return _sign_in(email, request.form.get("password", ""))
        except (AuthenticationError, BadRequestError) as error:
            errors = field_errors(error)
    return render_page("sign_in.html", status=400 if errors else 200, errors=errors, email=email,
                       next=request.values.get("next", ""))


def _sign_in(email: str, password: str):  # noqa: ANN202
    session = db_session()
    normalised = accounts.normalise_email(email)
    check_sign_in_allowed(normalised)
    try:
        account = console.authenticate(session, normalised, password)
    except AuthenticationError:
        count_sign_in_failure(normalised)
        raise
    check_ip_allowlist(account)
    settings = services().settings
    started = console.start_session(session, account, timedelta(hours=settings["CONSOLE_SESSION_HOURS"]))
    session.commit()
    response = redirect(_safe_next(request.form.get("next")))
    response.set_cookie(SESSION_COOKIE, started.token, max_age=int(settings["CONSOLE_SESSION_HOURS"] * 3600),
                        **_cookie_options())
    response.delete_cookie(FORM_COOKIE, path=CONSOLE_PATH)
    return response


def _safe_next(target: str | None) -> str:
    """Back to the console page that asked for a sign-in; never to another site."""
    path = target.split("?", 1)[0] if target else ""
    if target and path.startswith(CONSOLE_PATH + "/") and "\\" not in target and \
            posixpath.normpath(unquote(path)).startswith(CONSOLE_PATH + "/"):  # /console/../api (or %2e%2e) leaves it
        return target
    return url_for("console.runs_list")


@blp.post("/sign-out")
def sign_out():  # noqa: ANN201
    session = db_session()
    console.end_session(session, g.console_session)
    session.commit()
    response = redirect(url_for("console.sign_in"))
    response.delete_cookie(SESSION_COOKIE, path=CONSOLE_PATH)
    return response


@blp.route("/forgot-password", methods=["GET", "POST"])
def forgot_password():  # noqa: ANN201
    errors, sent, email = {}, False, request.form.get("email", "")
    if request.method == "POST":
        try:
            session = db_session()
            console.send_password_reset(session, services().settings, accounts.normalise_email(email))
            session.commit()
            sent = True
        except BadRequestError as error:
            errors = field_errors(error)
    return render_page("forgot_password.html", status=400 if errors else 200, errors=errors, sent=sent,
                       email=email)


@blp.route("/activate", methods=["GET", "POST"])
def set_password():  # noqa: ANN201
    token = request.values.get("token", "")
    errors, done = {}, False
    if request.method == "POST":
        try:
            session = db_session()
            console.set_password_with_token(session, token, request.form.get("password", ""),
                                            request.form.get("confirmation", ""))
            session.commit()
            done = True
        except CanvasError as error:
            db_session().rollback()
            errors = field_errors(error)
    return render_page("set_password.html", status=400 if errors else 200, errors=errors, token=token, done=done)


@blp.post("/act-as")
def act_as():  # noqa: ANN201
    session = db_session()
    try:
        console.act_as(session, g.console_session, request.form.get("email", ""))
    except ForbiddenError as error:
        session.rollback()
        return render_page("error.html", status=error.status, title="Not allowed", message=error.message,
                           code=error.status)
    session.commit()
    return redirect(url_for("console.runs_list"))


# --- runs ------------------------------------------------------------------------------------------------------------

@blp.get("/runs")
def runs_list():  # noqa: ANN201
    session = db_session()
    account_id = acting_account_id()
    errors, rows, total, page = {}, [], 0, 1
    try:
        filters, page = forms.run_filters(request.args), forms.page_number(request.args)
        rows, total = console.list_account_runs(session, account_id, filters, page)
    except BadRequestError as error:
        errors = field_errors(error)
    pages = forms.page_count(total, console.RUNS_PAGE_SIZE)
    context = {"runs": rows, "total": total, "page": page, "pages": pages, "errors": errors,
               "workflows": console.workflow_names(session, {run.workflow_id for run in rows}),
               "workflow_choices": console.workflow_choices(session, account_id),
               "states": RUN_STATES, "triggers": TRIGGERS, "args": request.args,
               "live": any(run.status in ACTIVE_RUN_STATES for run in rows)}
    template = "runs_table.html" if request.headers.get(LIVE_FRAGMENT_HEADER) else "runs.html"
    return render_page(template, status=400 if errors else 200, **context)


@blp.app_template_filter("utc_time")
def utc_time(value: datetime | None) -> Markup | str:
    """A moment of a run, to the millisecond, as a <time> element (the machine-readable ISO form in its attribute)."""
    if value is None:
        return "—"
    moment = value.astimezone(timezone.utc)
    return Markup('<time datetime="{}">{} UTC</time>').format(moment.isoformat(),
                                                             moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3])


@blp.app_template_global()
def page_link(page: int) -> str:
    """This page's address with its filters kept and `page` set: the pager of every list."""
    args = request.args.to_dict()
    args["page"] = str(page)
    return url_for(request.endpoint, **(request.view_args or {}), **args)


@blp.get("/runs/<run_id>")
def run_detail(run_id: str):  # noqa: ANN201
    session = db_session()
    run = runs.get_run(session, acting_account_id(), run_id)
    detail = runs.run_to_api(session, run)
    names = console.workflow_names(session, {run.workflow_id})
    end_reading(session)  # the previews read the object store
    context = {"run": detail, "workflow_name": names.get(run.workflow_id, str(run.workflow_id)),
               "live": run.status in ACTIVE_RUN_STATES,
               "previews": console.output_previews(services().blob_store, run)}
    template = "run_blocks.html" if request.headers.get(LIVE_FRAGMENT_HEADER) else "run.html"
    return render_page(template, **context)


def _confirmed_action(view):  # noqa: ANN001, ANN202
    """A run action: GET shows what it will do and asks to confirm; POST (CSRF-checked) does it."""

    @wraps(view)
    def confirmed(run_id: str):  # noqa: ANN202
        session = db_session()
        run = runs.get_run(session, acting_account_id(), run_id)
        failure = None
        if request.method == "POST":
            try:
                target = view(session, run)
                return redirect(url_for("console.run_detail", run_id=target.id))
            except CanvasError as error:
                session.rollback()
                failure = error
        return form_page("confirm.html", failure, run=run, action=view.__name__, form=_run_form_values(run),
                         modes=forms.rerun_modes(run), blocks=console.workflow_blocks(session, run.workflow_id))

    return confirmed


def _run_form_values(run) -> dict:  # noqa: ANN001
    """What the re-run form shows: what was sent, or first the link's choices with the run's own dry run."""
    if request.method == "POST":
        return request.form.to_dict()
    return {"dryRun": "1" if run.dry_run else "", **request.args.to_dict()}


@blp.route("/runs/<run_id>/rerun", methods=["GET", "POST"], endpoint="rerun")
@_confirmed_action
def rerun(session, run):  # noqa: ANN001, ANN201
    """Mode "all" runs the run's own range again; the others choose blocks of its workflow."""
    data = forms.run_request(run.workflow_id, request.form, (run.run_from_block, run.run_till_block))
    return runs.start_run(session, services().redis, acting_account_id(), data, blob_store=services().blob_store)


@blp.route("/runs/<run_id>/cancel", methods=["GET", "POST"], endpoint="cancel")
@_confirmed_action
def cancel(session, run):  # noqa: ANN001, ANN201
    cancelled = runs.cancel_run(session, services().redis, services().settings.get("REDIS_PREFIX"),
                                acting_account_id(), run.id, request.form.get("force") == "1")
    session.commit()
    return cancelled


@blp.route("/workflows/<workflow_id>/run", methods=["GET", "POST"])
def run_workflow(workflow_id: str):  # noqa: ANN201
    """A workflow's "Run..." form: every block, from / till a block, a range, a dry run (RunWorkflow's choices)."""
    session = db_session()
    workflow = workflows.get_workflow(session, acting_account_id(), workflow_id)
    failure = None
    if request.method == "POST":
        try:
            started = runs.start_run(session, services().redis, acting_account_id(),
                                     forms.run_request(workflow.id, request.form), blob_store=services().blob_store)
            return redirect(url_for("console.run_detail", run_id=started.id))
        except CanvasError as error:
            session.rollback()
            failure = error
    return form_page("run_workflow.html", failure, workflow=workflow, form=request.values.to_dict(),
                     modes=forms.RUN_MODES, blocks=console.workflow_blocks(session, workflow.id))


@blp.get("/runs/<run_id>/blocks/<int:number>/output")
def block_output_download(run_id: str, number: int):  # noqa: ANN201
    """A block's stored output as a download, read from the blob store as GET WorkflowRun/<id>/Block/<n>/Output."""
    session = db_session()
    output = runs.block_output(session, acting_account_id(), run_id, number)
    if output.kind == "none":
        abort(404, description=f"Block {number} of this run gave no output.")
    end_reading(session)  # the store may be slow
    return output_download(services().blob_store, output, console.download_name(output))


@blp.get("/runs/<run_id>/blocks/<int:number>/compare")
def compare_block(run_id: str, number: int):  # noqa: ANN201
    """A block's output beside another run's, as CompareBlockOutputs compares them; without ?otherRun= the form."""
    session = db_session()
    output = runs.block_output(session, acting_account_id(), run_id, number)
    errors, comparison = {}, None
    try:
        other_run_id, key = forms.compare_request(request.args)
        if other_run_id is not None:
            other = runs.block_output(session, acting_account_id(), other_run_id, number)
            end_reading(session)  # the store may be slow; the choices below are read afterwards
            comparison = compare_outputs(services().blob_store, output, other, key)
    except CanvasError as error:  # the other run is unknown, another account's, or has no output of this block
        errors = {"otherRun": error.message}
    return render_page("run_compare.html", status=400 if errors else 200, output=output, number=number,
                       errors=errors, comparison=comparison, args=request.args,
                       choices=console.comparable_runs(session, output))


@blp.app_template_global()
def console_page_exists(endpoint: str) -> bool:
    """Whether a page of the console is there to link to (the pages of an area come with its module)."""
    return endpoint in current_app.view_functions


# --- health ----------------------------------------------------------------------------------------------------------

@blp.get("/health")
def health():  # noqa: ANN201
    from canvas.health import healthz  # /healthz's own checks and counts

    answer = healthz()
    return render_page("health.html", health=answer.get_json(), healthy=answer.status_code == 200)
