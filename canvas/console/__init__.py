"""The web console (docs/console.md): server-rendered pages at /console over the same services as the Canvas
dialect; sign-in with e-mail and password, server-side sessions, CSRF tokens on every form."""
from __future__ import annotations

from collections.abc import Callable

from flask import Flask, redirect, request

from canvas.console.links import CONSOLE_PATH
from canvas.web import ERROR_PAGES, is_under


def register_console(app: Flask) -> None:
    """On Flask directly, not through flask-smorest's Api: the console is no part of the OpenAPI document."""
    from canvas.console import pages  # noqa: F401 - each module adds its pages to the blueprint
    from canvas.console.resources import blp, error_page

    app.register_blueprint(blp)
    app.extensions.setdefault(ERROR_PAGES, {})[CONSOLE_PATH] = error_page
    app.add_url_rule("/", endpoint="console_root", view_func=lambda: redirect(CONSOLE_PATH))


def outside_console(hook: Callable[[], None]) -> Callable[[], None]:
    """An API request hook that leaves the console's requests alone (its forms post HTML form data, not JSON)."""

    def hook_outside_console() -> None:
        if is_under(request.path, CONSOLE_PATH):
            return None
        return hook()

    hook_outside_console.__name__ = hook.__name__
    return hook_outside_console
