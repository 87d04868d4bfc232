"""The one error the Quartz dialect raises."""
from __future__ import annotations


class CronSyntaxError(ValueError):
    """A cron expression that is not valid Quartz; the message names the field and the offending token."""
