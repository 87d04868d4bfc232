"""Every default value of the service, in one place."""

DEFAULT_DATA_DIR = "./var"
DEFAULT_MAX_REQUEST_BYTES = 1024 * 1024
DEFAULT_TRUSTED_PROXY_COUNT = 0
DEFAULT_ACTIVATION_TTL_HOURS = 72
DEFAULT_SMTP_FROM = "canvas@localhost"
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8080"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_LOG_LEVEL = "INFO"
DEFAULT_LOG_FORMAT = "text"  # or "json": one JSON object per line (docs/logging.md)
DEFAULT_VERIFY_TIMEOUT_SECONDS = 10.0
DEFAULT_REDIS_PREFIX = "canvas:"
DEFAULT_SHUTDOWN_GRACE_SECONDS = 20.0
# A stopping worker ends a run it could not finish this long before the grace runs out (time to record it).
SHUTDOWN_RECORD_MARGIN_SECONDS = 3.0
DEFAULT_HEALTH_TIMEOUT_SECONDS = 2.0
DEFAULT_WORKER_CLASS = "simple"
DEFAULT_WORKER_RUNS_PER_CHILD = 1  # a forking worker's child serves one run: every run in a fresh process
DEFAULT_BLOCK_TIMEOUT_SECONDS = 15 * 60.0
DEFAULT_BLOCK_RETRIES = 2
DEFAULT_BLOCK_RETRY_BASE_SECONDS = 2.0
DEFAULT_PROGRESS_INTERVAL_SECONDS = 2.0
SCHEDULER_PRESENCE_SECONDS = 20.0  # a scheduler not heard from for this long is not counted by /healthz
DEFAULT_OUTPUT_RETENTION_DAYS = 30
DEFAULT_OUTPUT_RETENTION_RUNS = 10
DEFAULT_BLOB_OUTAGE_SECONDS = 10.0  # an object store restarting within this long is waited for, not failed
DEFAULT_LOST_RUN_GRACE_SECONDS = 30.0
DEFAULT_LEASE_RENEW_SECONDS = 5.0  # at most a third of the grace: a worker gets several tries before it is lost
DEFAULT_REAPER_INTERVAL_SECONDS = 10.0
DEFAULT_REQUEUE_LIMIT = 3
DEFAULT_RECONNECT_MAX_SECONDS = 30.0
DEFAULT_SCHEDULER_RECONCILE_SECONDS = 3.0
DEFAULT_SCHEDULER_MISFIRE_GRACE_SECONDS = 60.0
DEFAULT_SCHEDULER_RUN_EACH_LIMIT = 10
MAX_JSON_NESTING = 100  # arrays/objects inside each other in one request document; far beyond any real request
# What the Canvas document shows as schedulerFrequency of a workflow that was never scheduled, byte for byte
DEFAULT_SCHEDULER_FREQUENCY = '{ "cronSchedule": "0 0 * ? * *"}'
# Rate limits (docs/rate-limits.md): far above ordinary automation (a run polled every 200 ms is 300 calls a
# minute; a burst of 200 RunWorkflow calls, a schemathesis run of a few thousand calls), so only a runaway client
# meets them. Counted per fixed window of DEFAULT_RATE_LIMIT_WINDOW_SECONDS.
DEFAULT_RATE_LIMIT_WINDOW_SECONDS = 60
DEFAULT_RATE_LIMIT_PER_KEY = 6000
DEFAULT_RATE_LIMIT_PER_ORGANIZATION = 20000
DEFAULT_AUTH_FAILURE_LIMIT = 100  # failed authentications from one address per window below, then 429
DEFAULT_AUTH_FAILURE_WINDOW_SECONDS = 300
DEFAULT_WEBHOOK_RATE_LIMIT_PER_FLOW = 300  # webhook calls per flow per rate-limit window
DEFAULT_NOTIFICATION_INTERVAL_SECONDS = 3600  # at most one run notification mail per workflow per hour
# Audit log (docs/audit-log.md): entries older than this many days are removed by the schedulers (0: kept forever),
# checked every DEFAULT_AUDIT_PRUNE_INTERVAL_SECONDS.
DEFAULT_AUDIT_RETENTION_DAYS = 365
DEFAULT_AUDIT_PRUNE_INTERVAL_SECONDS = 3600.0
