"""The console's pages beyond sign-in, runs and health (canvas.console.resources): one module per area, each adding
its routes to the console blueprint."""
from canvas.console.pages import accounts, applications, schedules, templates, workflows  # noqa: F401
