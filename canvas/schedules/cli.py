"""`canvas cron "<expr>" [--tz ZONE] [--after ISO] [-n COUNT]`: the next fire times of a Quartz expression.

Needs no database or settings: it is the dialect alone, the same as POST /api/SchedulePreview computes.
"""
from __future__ import annotations

import sys
from zoneinfo import ZoneInfo

import click

from canvas.errors import BadRequestError
from canvas.models.base import utcnow
from canvas.scheduling.quartz import CronSyntaxError, parse

USAGE_ERROR = 2  # as click answers a usage error


@click.command()
@click.argument("expression")
@click.option("--tz", "zone_name", default="UTC", show_default=True, help="IANA time zone the schedule runs in.")
@click.option("--after", default=None, help="ISO 8601 instant to start after (no offset: UTC); default now.")
@click.option("-n", "count", default=5, show_default=True, type=click.IntRange(1, 1000),
              help="How many fire times to print.")
def cron(expression: str, zone_name: str, after: str | None, count: int) -> None:
    """Print the next fire times of a Quartz cron EXPRESSION, one ISO 8601 instant with offset per line."""
    from canvas.schedules.service import check_time_zone, fire_time_texts, last_fire_year, parse_instant

    try:
        parsed = parse(expression)
        zone = ZoneInfo(check_time_zone(zone_name, "--tz"))
        start = parse_instant(after, "--after") if after is not None else utcnow()
        lines = fire_time_texts(parsed, zone, start, count)
    except CronSyntaxError as exc:
        _fail(f"'{expression}' is not a valid Quartz cron expression: {exc}")
    except BadRequestError as exc:
        _fail(exc.message)
    if not lines:  # printing nothing and exiting 0 read as success; the API refuses such a schedule
        _fail(f"'{expression}' never fires after {start.isoformat()} in {zone_name} (up to the end of "
              f"{last_fire_year()})")
    for line in lines:
        click.echo(line)


def _fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(USAGE_ERROR)
