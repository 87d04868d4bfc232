"""The JSON:API ("v2") dialect under /v2, served by the same services as the Canvas dialect."""
from __future__ import annotations


def blueprints() -> list:
    """Every v2 blueprint, imported here so the app factory needs one line."""
    from canvas.v2.accounts import blp as accounts_blp
    from canvas.v2.audit_events import blp as audit_events_blp
    from canvas.v2.callbacks import blp as callbacks_blp
    from canvas.v2.components import blp as components_blp
    from canvas.v2.credentials import blp as credentials_blp
    from canvas.v2.executions import blp as executions_blp
    from canvas.v2.flows import blp as flows_blp
    from canvas.v2.logs import blp as logs_blp
    from canvas.v2.webhooks import blp as webhooks_blp

    return [accounts_blp, flows_blp, credentials_blp, executions_blp, logs_blp, webhooks_blp, callbacks_blp,
            components_blp, audit_events_blp]
