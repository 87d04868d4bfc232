"""Run notifications by e-mail, the engine side: who is told (canvas.notifications.settings), when (a run failed, a
run succeeded right after a failure, a schedule occurrence was missed or skipped: canvas.notifications.events) and
the mail itself, sent by an RQ job at most once per workflow per interval (canvas.notifications.mail).

The dialects only translate the per-workflow settings; nothing here imports one."""
