"""Rate limits (docs/rate-limits.md): Redis fixed-window counters per API key, per organization, per flow's webhooks
and, for failed authentications, per address."""
from canvas.ratelimits.hooks import (
    check_sign_in_allowed,
    count_sign_in_failure,
    counting_auth_failures,
    enforce_rate_limits,
    forget_counts,
    init_rate_limits,
    limit_webhook_calls,
)

__all__ = ["check_sign_in_allowed", "count_sign_in_failure", "counting_auth_failures", "enforce_rate_limits",
           "forget_counts", "init_rate_limits", "limit_webhook_calls"]
