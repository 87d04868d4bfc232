"""Settings of the production WSGI server that `canvas api` runs (gunicorn, sync workers)."""

worker_class = "canvas.wsgi_server.JsonErrorSyncWorker"  # gunicorn's sync worker, its own errors in JSON
timeout = 60
graceful_timeout = 20
keepalive = 5
# Access logs go to stderr like everything else; secrets only travel in headers, which are not logged.
accesslog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
# Several `canvas api` processes may run on one machine; gunicorn's control socket would make them collide.
control_socket_disable = True
# The longest request line gunicorn allows (a long search or filter); longer ones get a JSON 414.
limit_request_line = 8190
