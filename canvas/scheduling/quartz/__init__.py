"""The Quartz cron dialect, exactly as Quartz 2.3's ``CronExpression`` reads and evaluates it (standard library only).

    >>> expr = parse("0 0 2,6 ? * TUE *")
    >>> expr.next_fire_time(after, ZoneInfo("Europe/Oslo"))

Layout, after APScheduler's ``triggers/cron``: ``tokens`` holds one class per token form, ``fields`` the bounds of each
field and the token forms it accepts, ``expression`` the ``parse()`` front and ``search`` the next-fire-time search.
"""
from .errors import CronSyntaxError
from .expression import CronExpression, parse

__all__ = ["CronExpression", "CronSyntaxError", "parse"]
