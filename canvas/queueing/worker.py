"""The RQ worker classes of `canvas worker`: RQ's SimpleWorker and Worker with ``OutageTolerantWorker`` mixed in,
and RQ's scheduler process made patient.

* The database is the source of truth for runs, so RQ's own record of a job (result, status, registries) may be
  lost: when Redis is away as a run ends, that record is given up (one line, no traceback) instead of ending the
  process. A lost connection anywhere else in RQ's work loop ends that loop quietly, saying why (``lost``);
  workers/worker.py then waits for Redis and starts a fresh loop.
* RQ's scheduler (it queues delayed jobs: callback retries) runs in one place at a time, whoever holds RQ's lock:
  a thread of `canvas scheduler` (``PatientScheduler.serve``), or the process RQ forks for a worker started with
  ``--with-rq-scheduler``. Either waits for a lost Redis instead of dying with a traceback.
* Asked to stop (SIGTERM/SIGINT) while a run is going, the worker lets it finish for ``stop_timeout`` seconds, then
  ends it at once with the reason (canvas.execution.shutdown); a second Ctrl-C ends it at once. Either way the run
  is recorded "Failed" by the runner, under its lease, instead of being killed and left "Running".
* A keeper thread registers the worker again when Redis lost its registration (FLUSHALL, a restart without
  persistence): RQ's heartbeat only renews the expiry of keys it assumes exist, and an idle worker beats only every
  few minutes, so /healthz would count no workers.
* A worker that lost the database (its reaper, or a run it could not start, found it unreachable) takes no run until
  the database answers again (``database_check``): Redis may still hand it runs that it cannot start, each held for
  the lost-run grace before the reaper queues it again, while the other workers could run them at once.
"""
from __future__ import annotations

import inspect
import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path
from typing import NoReturn

from redis import Redis
from redis.client import PubSubWorkerThread
from rq import Queue, SimpleWorker, Worker, worker_registration
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.exceptions import StopRequested
from rq.executions import Execution
from rq.job import Job
from rq.scheduler import RQScheduler

from canvas.defaults import DEFAULT_RECONNECT_MAX_SECONDS, DEFAULT_SHUTDOWN_GRACE_SECONDS, SHUTDOWN_RECORD_MARGIN_SECONDS
from canvas.execution.shutdown import INTERRUPT_SIGNAL, install_interrupt_handler
from canvas.hangup import as_sigterm, stop_on_hangup
from canvas.observability.logging import forget_run, logged_run
from canvas.outages import DATABASE, REDIS_UNREACHABLE, Backoff, OutageLog, outage_text, unreachable_service
from canvas.queueing.keys import WORKER_WAITING_FOR_DATABASE
from canvas.queueing.waiting_child import JobOrder, WaitingChild, read_order, report_done

log = logging.getLogger("canvas.worker")
REGISTRATION_CHECK_SECONDS = 5.0  # a worker whose registration Redis lost is counted again within this
PUBSUB_RETRY_SECONDS = 2.0
# RQ's listener for commands waits up to 60 s for a message at a time; from redis-py 8.2 stopping it waits for that
# wait to end. A wait this long bounds how long a stopping worker takes to let go of its listener.
PUBSUB_POLL_SECONDS = 1.0
PUBSUB_STOP_WAIT_SECONDS = 1.0  # RQ's own wait for it (join(timeout=1))
WAITS_FOR_REDIS = "the worker waits for it and carries on when it is back"
TAKES_NO_RUN = "takes no run until the database answers"
LOCK_RETRY_SECONDS = 5.0  # a standby RQ scheduler asks for the lock this often
# RQ renews the worker's keys (three round trips) after each job and twice around each dequeue: three times per job
# for the same expiry. Beats with that expiry closer together than this are left out: the keys outlive a beat by
# worker_ttl + 60 s (minutes), so a worker's keys expire at most this much earlier after its last sign of life.
HEARTBEAT_MIN_INTERVAL_SECONDS = 1.0


class RedisUnreachable(Exception):
    """A dequeue that failed for want of Redis. RQ retries a failed dequeue in a loop of its own (an error line per
    attempt, without end); under this name the failure gets through that loop to ours."""


class RunQueue(Queue):
    @classmethod
    def dequeue_any(cls, *args, **kwargs):  # noqa: ANN002, ANN003, ANN206 - RQ's signature
        try:
            return super().dequeue_any(*args, **kwargs)
        except REDIS_UNREACHABLE as error:
            raise RedisUnreachable(error.__class__.__name__) from error


class PatientScheduler(RQScheduler):
    """RQ's scheduler, which waits for a lost Redis instead of dying with a traceback: in a process of its own,
    forked by a worker (``work``), or in a thread of another process (``serve``)."""

    def __init__(self, *args, reconnect_max: float = DEFAULT_RECONNECT_MAX_SECONDS,  # noqa: ANN002
                 outages: OutageLog | None = None, **kwargs) -> None:  # noqa: ANN003 - RQ's scheduler arguments
        super().__init__(*args, **kwargs)
        self.outages = outages or OutageLog(self.log, f"RQ scheduler {self.name}")  # its host's, in a thread
        self.backoff = Backoff(reconnect_max)

    def work(self) -> None:
        while True:
            try:
                super().work()
                return
            except REDIS_UNREACHABLE as error:
                if self._stop_requested:
                    return  # its locks expire by themselves, or the worker releases them
                self.outages.failed(error, "queueing delayed jobs", "waiting for it")
                self._pause(self.backoff.next_delay())

    def serve(self, stop: threading.Event, acquire_interval: float = LOCK_RETRY_SECONDS) -> None:
        """RQ's scheduler loop in a thread, until ``stop``: while another holds RQ's lock this one stands by and asks
        for it every ``acquire_interval`` (the lock outlives a killed holder by a minute at most); while it holds
        it, it queues the delayed jobs that are due every ``interval`` seconds. RQ's own loop installs signal
        handlers, which only a main thread may do."""
        next_try = 0.0
        try:
            while not stop.is_set():
                try:
                    if not self.acquired_locks and time.monotonic() >= next_try:
                        next_try = time.monotonic() + acquire_interval
                        if self.acquire_locks():
                            self.register_birth()
                    if self.acquired_locks:
                        self.heartbeat()  # renews the lock, or finds it taken over and stands by again
                        self.enqueue_scheduled_jobs()
                except REDIS_UNREACHABLE as error:
                    self.outages.failed(error, "queueing delayed jobs", "waiting for it")
                except Exception:  # noqa: BLE001 - logged with its traceback; the thread outlives every failure
                    self.log.exception("RQ scheduler %s: queueing delayed jobs failed", self.name)
                else:
                    self.outages.succeeded("Redis")
                    self.backoff.reset()
                    stop.wait(self.interval)
                    continue
                stop.wait(self.backoff.next_delay())
        finally:
            self._retire()

    def _retire(self) -> None:
        if not self.acquired_locks:
            return
        try:
            self.release_locks()
            self.register_death()
        except REDIS_UNREACHABLE:  # the lock expires by itself within a minute
            self.log.info("RQ scheduler %s: Redis is away; its lock expires by itself", self.name)

    def heartbeat(self) -> None:
        super().heartbeat()
        self.outages.succeeded("Redis")
        self.backoff.reset()

    def _pause(self, seconds: float) -> None:
        """A sleep that a stop request (SIGTERM from the worker) cuts short."""
        deadline = time.monotonic() + seconds
        while not self._stop_requested and time.monotonic() < deadline:
            time.sleep(0.1)


class OutageTolerantWorker:
    """Mixed into RQ's worker classes, before them (see the module docstring). ``probe`` is a client with short
    timeouts: RQ gives the worker's own connection a socket timeout of minutes, for its blocking dequeue."""

    queue_class = RunQueue
    log_result_lifespan = False  # "result discarded immediately" after every run: results are not kept anyway

    def __init__(self, *args, outages: OutageLog | None = None, stop: threading.Event | None = None,  # noqa: ANN002
                 probe: Redis | None = None, reconnect_max: float = DEFAULT_RECONNECT_MAX_SECONDS,
                 stop_timeout: float | None = None, database_check: Callable[[], None] | None = None,
                 **kwargs) -> None:  # noqa: ANN003 - RQ's worker arguments
        super().__init__(*args, **kwargs)
        self.database_check = database_check  # raises when the database cannot be reached
        self.stop_timeout = run_stop_timeout(DEFAULT_SHUTDOWN_GRACE_SECONDS) if stop_timeout is None else stop_timeout
        self._stop_signal: str | None = None  # the signal that asked this worker to stop
        self._executing = False  # a run is going, in this process or in its forked child
        self._run_stopper: threading.Timer | None = None
        self._run_interrupted = False
        self.outages = outages or OutageLog(log, f"worker {self.name}")
        self.stop = stop or threading.Event()  # set by a signal that came while RQ's handlers were not installed
        self.probe = probe or self.connection
        self.reconnect_max = reconnect_max
        self.lost: BaseException | None = None  # why the work loop ended early, when Redis went away
        self.finished = False  # the work loop ended as asked: a burst that emptied the queue, the idle limit
        self.jobs_done = 0
        self.death_registered = False
        self._registered = False
        self._registration_lock = threading.Lock()
        self._keeper: RegistrationKeeper | None = None
        self._torn_down = False
        self._unrecorded_job: str | None = None
        self._default_beat_at: float | None = None  # monotonic time of the last beat with RQ's default expiry

    # --- the work loop ------------------------------------------------------------------------------------------

    def work(self, *args, **kwargs) -> bool:  # noqa: ANN002, ANN003 - RQ's arguments
        if threading.current_thread() is threading.main_thread():  # where signal handlers live
            install_interrupt_handler(self._stop_reason, lambda: self._executing and not self.horse_pid)
        try:
            return super().work(*args, **kwargs)
        except REDIS_UNREACHABLE as error:  # before RQ's loop: registering, subscribing, starting its scheduler
            self.teardown()
            self.lost = error
            self.outages.failed(error, "starting the worker", WAITS_FOR_REDIS)
            return False

    def ended_as_asked(self, jobs_left: int | None) -> bool:
        """A stop signal, the end of a burst or of the idle time, or --max-jobs: not a reason to wait and go on."""
        if self._shutdown_requested_date is not None:
            return True
        return self.lost is None and (self.finished or (jobs_left is not None and jobs_left <= 0))

    def check_for_suspension(self, burst: bool) -> None:
        if self.stop.is_set():
            raise StopRequested
        try:
            super().check_for_suspension(burst)
        except StopRequested:
            self.finished = True  # suspended in burst mode: RQ ends the burst
            raise
        except REDIS_UNREACHABLE as error:
            self._lose(error, "checking for suspension")

    def run_maintenance_tasks(self) -> None:
        try:
            super().run_maintenance_tasks()
        except REDIS_UNREACHABLE as error:
            self._lose(error, "cleaning RQ's registries")

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None):  # noqa: ANN201
        if self.outages.is_down(DATABASE):
            self._wait_for_the_database()
        try:
            result = super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        except RedisUnreachable as error:
            self._lose(error.__cause__ or error, "waiting for a run")
        except REDIS_UNREACHABLE as error:
            self._lose(error, "waiting for a run")
        self.finished = result is None
        return result

    def _wait_for_the_database(self) -> None:
        """Until the database answers (a stop request ends the wait), beating meanwhile: RQ would hand this worker
        runs it cannot start."""
        if self.database_check is None:
            return
        backoff, said = Backoff(self.reconnect_max), False
        self.procline("Waiting for the database")
        with suppress(*REDIS_UNREACHABLE):  # for /healthz; RQ's next dequeue sets it back to idle
            self.set_state(WORKER_WAITING_FOR_DATABASE)
        while True:
            try:
                self.database_check()
            except Exception as error:  # noqa: BLE001 - anything but an outage is the run's to meet and report
                if unreachable_service(error) != DATABASE:
                    return
                if not said:
                    log.warning("worker %s: %s; the worker %s", self.name, outage_text(DATABASE, error), TAKES_NO_RUN)
                    said = True
            else:
                self.outages.succeeded(DATABASE)
                if said:
                    log.info("worker %s: the database answers; taking runs again", self.name)
                return
            self.heartbeat()
            if self.stop.wait(backoff.next_delay()) or self._shutdown_requested_date is not None:
                raise StopRequested

    def handle_exception(self, job, *exc_info) -> None:  # noqa: ANN001, ANN002
        """A run that failed for want of the database (it could not be started): the worker waits for the database
        before it takes another. (A forked child's parent learns it from its reaper.)"""
        error = exc_info[1]  # RQ passes sys.exc_info()
        if not self.is_horse and unreachable_service(error) == DATABASE:
            self.outages.failed(error, f"starting run {job.id}", f"the worker {TAKES_NO_RUN}")
        super().handle_exception(job, *exc_info)

    def execute_job(self, job, queue) -> None:  # noqa: ANN001
        self._executing = True
        try:
            with logged_run(run_of_job(job)) if is_run_job(job) else nullcontext():  # RQ's lines too
                super().execute_job(job, queue)
        except REDIS_UNREACHABLE as error:
            self._lose(error, f"finishing run {job.id}")
        finally:
            self._executing = False
            self.jobs_done += 1

    # --- stopping while a run is going ---------------------------------------------------------------------------

    def request_stop(self, signum, frame) -> None:  # noqa: ANN001 - RQ's signal handler
        """The first stop signal: RQ lets the run finish (or ends an idle worker at once, raising StopRequested);
        a run still going after ``stop_timeout`` is ended with the reason."""
        self._stop_signal = self._stop_signal or signal.Signals(signum).name
        super().request_stop(signum, frame)
        if self._executing and self._run_stopper is None:
            log.info("worker %s: stopping after its run; a run still going in %.0f s is ended", self.name,
                     self.stop_timeout)
            self._run_stopper = threading.Timer(self.stop_timeout, self.stop_run_now)
            self._run_stopper.daemon = True
            self._run_stopper.start()

    def request_force_stop(self, signum, frame) -> None:  # noqa: ANN001 - RQ's signal handler
        """A second stop signal (Ctrl-C again) ends the run at once, recorded with the reason, rather than killing
        it and leaving it "Running" until a reaper finds it."""
        if self._executing and not self._run_interrupted:
            self.stop_run_now()
            return
        super().request_force_stop(signum, frame)

    def stop_run_now(self) -> None:
        """Interrupt the run in the process that executes it (canvas.execution.shutdown), which records its end."""
        if not self._executing or self._run_interrupted:
            return
        self._run_interrupted = True
        log.warning("worker %s: %s", self.name, self._stop_reason())
        try:
            os.kill(self.horse_pid or os.getpid(), INTERRUPT_SIGNAL)
        except ProcessLookupError:  # the forked child has just ended
            pass

    def _stop_reason(self) -> str:
        signal_name = f" ({self._stop_signal})" if self._stop_signal else ""
        return (f"stopped: the worker was shut down{signal_name} before the run finished "
                f"(stop timeout {self.stop_timeout:g} s)")

    def _start_scheduler(self, burst: bool = False, logging_level: str | None = "INFO",
                         date_format: str = DEFAULT_LOGGING_DATE_FORMAT,
                         log_format: str = DEFAULT_LOGGING_FORMAT) -> None:
        """RQ's own, but with a PatientScheduler (RQ names its scheduler class in the method's body)."""
        self.scheduler = PatientScheduler(
            self.queues, connection=self.connection, serializer=self.serializer, reconnect_max=self.reconnect_max,
            logging_level=logging_level if logging_level is not None else self.log.level, date_format=date_format,
            log_format=log_format)
        self.scheduler.acquire_locks()
        if not self.scheduler.acquired_locks:
            return
        if not burst:
            self.scheduler.start()
            return
        try:
            self.scheduler.register_birth()
            self.scheduler.enqueue_scheduled_jobs()
        finally:
            self.scheduler.release_locks()
            self.scheduler.register_death()

    def _lose(self, error: BaseException, during: str) -> NoReturn:
        """End RQ's work loop quietly (StopRequested is its way out) and remember why: run_worker waits for Redis."""
        self.lost = error
        self.outages.failed(error, during, WAITS_FOR_REDIS)
        raise StopRequested from error

    # --- RQ's record of a job, which the database makes optional ------------------------------------------------

    def handle_execution_ended(self, job, *args, **kwargs) -> None:  # noqa: ANN001, ANN002, ANN003
        with self._record_may_be_lost(job):
            super().handle_execution_ended(job, *args, **kwargs)

    def handle_job_success(self, job, *args, **kwargs) -> None:  # noqa: ANN001, ANN002, ANN003
        with self._record_may_be_lost(job):
            super().handle_job_success(job, *args, **kwargs)

    def handle_job_failure(self, job, *args, **kwargs) -> None:  # noqa: ANN001, ANN002, ANN003
        with self._record_may_be_lost(job):
            super().handle_job_failure(job, *args, **kwargs)

    def handle_job_retry(self, job, *args, **kwargs) -> None:  # noqa: ANN001, ANN002, ANN003
        with self._record_may_be_lost(job):
            super().handle_job_retry(job, *args, **kwargs)

    @contextmanager
    def _record_may_be_lost(self, job) -> Iterator[None]:  # noqa: ANN001
        try:
            yield
        except REDIS_UNREACHABLE as error:
            if not self.is_horse:  # a forked child's parent logs the outage, once
                self.outages.failed(error, f"recording the end of run {job.id} in RQ", WAITS_FOR_REDIS)
            if self._unrecorded_job != job.id:  # one line per job, though RQ tries several writes
                self._unrecorded_job = job.id
                log.info("run %s: its end not recorded in RQ (%s); the database has the run's outcome", job.id,
                         error.__class__.__name__)

    # --- liveness: heartbeats, registration, commands -----------------------------------------------------------

    def heartbeat(self, timeout: int | None = None, pipeline=None) -> None:  # noqa: ANN001
        """Never raises for want of Redis: RQ beats where it cannot stop (while a forked job is killed, say); the
        next dequeue, or the keeper, notices the outage. A beat that would repeat, with the same (default) expiry,
        one sent less than HEARTBEAT_MIN_INTERVAL_SECONDS ago is left out; one with another expiry (RQ's beats
        around a job) is always sent, and the next default one after it too."""
        if timeout is not None:
            self._default_beat_at = None
        elif pipeline is None and self._beat_recently():
            return
        try:
            super().heartbeat(timeout, pipeline)
        except REDIS_UNREACHABLE as error:
            self.outages.failed(error, "the worker's heartbeat", WAITS_FOR_REDIS)
            return
        if timeout is None and pipeline is None:
            self._default_beat_at = time.monotonic()

    def _beat_recently(self) -> bool:
        return (self._default_beat_at is not None
                and time.monotonic() - self._default_beat_at < HEARTBEAT_MIN_INTERVAL_SECONDS)

    def maintain_heartbeats(self, job, execution) -> None:  # noqa: ANN001
        """The forking worker's beat while its child runs a job: a failed one must not abandon the child."""
        try:
            super().maintain_heartbeats(job, execution)
        except REDIS_UNREACHABLE as error:
            self.outages.failed(error, f"the heartbeat of run {job.id}", WAITS_FOR_REDIS)

    def set_shutdown_requested_date(self) -> None:
        """Called from RQ's signal handler, in the middle of a job: raising there would break the run."""
        try:
            super().set_shutdown_requested_date()
        except REDIS_UNREACHABLE as error:
            self.outages.failed(error, "noting the stop request", WAITS_FOR_REDIS)

    def bootstrap(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().bootstrap(*args, **kwargs)
        self._keeper = RegistrationKeeper(self)
        self._keeper.start()

    def register_birth(self) -> None:
        self._clear_a_dead_namesake()
        super().register_birth()
        with self._registration_lock:
            self._registered = True

    def _clear_a_dead_namesake(self) -> None:
        """RQ refuses a worker whose name a live registration holds ("There exists an active worker named ...
        already"), and a worker killed (kill -9, a crash) leaves its registration for RQ's worker TTL, about eight
        minutes: a supervisor restarting a worker started with --name crash-looped until then. When that worker ran
        on this machine and its process is gone, its registration is cleared; a live one refuses this start in
        words (WorkerNameTakenError)."""
        fields = self.connection.hmget(self.key, "hostname", "pid", "death")
        hostname, pid, death = (value.decode() if isinstance(value, bytes) else value for value in fields)
        if hostname is None or death is not None:
            return
        mine = pid == str(os.getpid())  # this process's own, left by its loop before an outage
        if hostname == self.hostname and pid and pid.isdigit() and (mine or not _a_canvas_process(int(pid))):
            if not mine:
                log.warning("worker %s: a previous worker of this name (pid %s) ended without saying so; its "
                            "registration is cleared", self.name, pid)
            with self.connection.pipeline() as pipeline:
                worker_registration.unregister(self, pipeline)
                pipeline.delete(self.key)
                pipeline.execute()
            return
        raise WorkerNameTakenError(f"a worker named {self.name!r} is already running (pid {pid} on {hostname}); stop "
                                   f"it, or start this one with another --name")

    def register_death(self) -> None:
        """Tolerates a lost Redis: ``retire`` registers the death later, before a new loop under the same name."""
        with self._registration_lock:
            self._registered = False  # the keeper must not bring the worker back
        if self._keeper is not None:
            self._keeper.stopped.set()
        try:
            super().register_death()
            self.death_registered = True
        except REDIS_UNREACHABLE as error:
            self.outages.failed(error, "registering the worker's end", WAITS_FOR_REDIS)

    def retire(self) -> None:
        """What teardown could not do while Redis was away (raises while it still is): register the worker's death,
        or a worker under the same name would meet RQ's "There exists an active worker named ... already"; and
        release its scheduler's locks, or the next scheduler would wait for them to expire."""
        if not self.death_registered:
            super().register_death()
            self.death_registered = True
        if self.scheduler is not None:
            self.scheduler.release_locks()

    def teardown(self) -> None:
        if self._torn_down:
            return
        self._torn_down = True
        # RQ's signal handler raises StopRequested when the worker is not busy: in the middle of this, it would skip
        # registering the worker's death. From here on a signal only says "stop after this loop".
        stop_on_signals(self.stop)
        super().teardown()

    def subscribe(self) -> None:
        """RQ's own, with the listener thread waiting PUBSUB_POLL_SECONDS at a time rather than 60 (RQ names the wait
        in the method's body)."""
        self.log.info("Worker %s: subscribing to channel %s", self.name, self.pubsub_channel_name)
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(sleep_time=PUBSUB_POLL_SECONDS, daemon=True,
                                                       exception_handler=self._pubsub_exception_handler)

    def unsubscribe(self) -> None:
        if self.pubsub_thread is not None:
            # The listener told to end first, without waiting for it: RQ sends UNSUBSCRIBE and only then stops it,
            # so a listener that read the reply before the stop went back to waiting out a whole poll.
            _stop_listener(self.pubsub_thread, 0)
        try:
            super().unsubscribe()
        except REDIS_UNREACHABLE:
            # The pub/sub thread must stop all the same, or it would try Redis every two seconds for ever.
            _stop_listener(self.pubsub_thread, PUBSUB_STOP_WAIT_SECONDS)
            with suppress(Exception):
                self.pubsub.close()

    def _pubsub_exception_handler(self, exc, pubsub, pubsub_thread) -> None:  # noqa: ANN001
        """RQ's logs an error every two seconds while Redis is away; redis-py subscribes again once it is back."""
        if not isinstance(exc, REDIS_UNREACHABLE):
            super()._pubsub_exception_handler(exc, pubsub, pubsub_thread)
            return
        self.outages.failed(exc, "listening for RQ commands", WAITS_FOR_REDIS)
        time.sleep(PUBSUB_RETRY_SECONDS)

    def keep_registered(self) -> None:
        """The keeper's check: the worker's key and its place in the sets Worker.count reads are there, or are put
        back (the worker was registered once, so only a Redis that lost data can have lost them)."""
        try:
            restored = self._restore_registration()
        except REDIS_UNREACHABLE as error:
            self.outages.failed(error, "checking the worker's registration", WAITS_FOR_REDIS)
            return
        self.outages.succeeded("Redis")
        if restored:
            log.warning("worker %s: Redis had lost its registration (restarted without its data?); registered again",
                        self.name)

    def _restore_registration(self) -> bool:
        worker_sets = [self.redis_workers_keys,
                       *(worker_registration.WORKERS_BY_QUEUE_KEY % name for name in self.queue_names())]
        with self.probe.pipeline(transaction=False) as pipeline:
            pipeline.exists(self.key)
            for key in worker_sets:
                pipeline.sismember(key, self.key)
            if all(pipeline.execute()):
                return False
        with self._registration_lock:  # held while writing: register_death must not come between check and write
            if not self._registered:
                return False
            with self.probe.pipeline() as pipeline:
                pipeline.hset(self.key, mapping={**self.serialize(), "state": self.get_state()})
                worker_registration.register(self, pipeline)
                pipeline.expire(self.key, self.worker_ttl + 60)
                pipeline.execute()
        return True


def _stop_listener(thread: PubSubWorkerThread, wait: float) -> None:
    """Ask a pub/sub thread to stop and wait for it at most `wait` seconds: from redis-py 8.2, stop() itself waits for
    the thread, for as long as it takes unless told otherwise (a Redis that drops packets can hold it for minutes)."""
    if _STOP_TAKES_A_TIMEOUT:
        thread.stop(timeout=wait)
    else:
        thread.stop()
        thread.join(timeout=wait)


_STOP_TAKES_A_TIMEOUT = "timeout" in inspect.signature(PubSubWorkerThread.stop).parameters


class RegistrationKeeper(threading.Thread):
    """Calls the worker's keep_registered every few seconds, from its birth to its death."""

    def __init__(self, worker: OutageTolerantWorker, interval: float = REGISTRATION_CHECK_SECONDS) -> None:
        super().__init__(name="worker-registration", daemon=True)
        self.worker, self.interval = worker, interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            self.worker.keep_registered()


class CanvasSimpleWorker(OutageTolerantWorker, SimpleWorker):
    """Runs each job in the worker process."""


class CanvasForkWorker(OutageTolerantWorker, Worker):
    """Runs each job in a forked child, forked ahead of its job (canvas.queueing.waiting_child): while the worker
    waits for a job, or watches the child running the last one, the next child waits, prepared by ``prepare_child``
    (the database's connection opened). ``release_child``: what a child that got no job closes before it leaves.
    ``runs_per_child``: runs one child serves, one after another, before it exits (CANVAS_WORKER_RUNS_PER_CHILD)."""

    def __init__(self, *args, prepare_child: Callable[[], None] | None = None,  # noqa: ANN002
                 release_child: Callable[[], None] | None = None, runs_per_child: int = 1,
                 **kwargs) -> None:  # noqa: ANN003 - RQ's arguments
        super().__init__(*args, **kwargs)
        self.prepare_child, self.release_child = prepare_child, release_child
        self.runs_per_child = runs_per_child
        self._waiting: WaitingChild | None = None
        self._running: WaitingChild | None = None  # the child running a job, when it is to stay for another

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None):  # noqa: ANN201
        # The first child is forked here rather than at the worker's start: after RQ's scheduler process, which
        # would otherwise hold the child's pipe open after the worker closed it.
        if self._waiting is None:
            self._waiting = self._fork_waiting_child()
        return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)

    def fork_work_horse(self, job: Job, queue: Queue) -> None:
        """RQ's fork, done ahead of time: the job goes to the child that waits (to a new one if that one died), and
        the next child is forked while this one works."""
        os.environ["RQ_WORKER_ID"] = self.name
        os.environ["RQ_JOB_ID"] = job.id
        order = JobOrder(job.id, queue.name, self.execution.id)
        child, self._waiting = self._waiting, None
        while child is None or not child.hand_over(order):
            child = self._fork_waiting_child()
        self._horse_pid = child.pid
        self.procline(f"Handed job {job.id} to {child.pid} at {time.time()}")
        if child.stays:
            self._running = child
            return
        try:
            self._waiting = self._fork_waiting_child()
        except OSError as error:  # the job runs all the same; the next wait for a job forks again, or fails there
            log.warning("worker %s: forking the next run's child failed (%s); trying again before the next run",
                        self.name, error)

    def wait_for_horse(self):  # noqa: ANN201 - RQ's (pid, status, rusage)
        """A child that stays for another run reports its run done and waits again; one that ends (its last run,
        or killed) is waited for as RQ does. Called again when RQ's monitoring alarm interrupts it."""
        child = self._running
        if child is not None:
            if child.wait_done():
                self._running, self._waiting = None, child
                return child.pid, os.EX_OK, None
            self._running = None
        return super().wait_for_horse()

    def _fork_waiting_child(self) -> WaitingChild:
        orders_read, orders_write = os.pipe()
        done_read, done_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(orders_write)
            os.close(done_read)
            self._serve_jobs(orders_read, done_write)
        os.close(orders_read)
        os.close(done_write)
        return WaitingChild(pid, orders_write, done_read, self.runs_per_child)

    def _serve_jobs(self, orders_pipe: int, done: int) -> NoReturn:
        """The child's life: get ready, wait for the worker's orders, and run each job; its last as RQ's forked child
        does (main_work_horse ends the process). Given no order (the closed pipe), it closes its connections and
        leaves."""
        try:
            forget_run()  # forked while the worker was busy with a run: not this child's
            os.setpgrp()  # as RQ's child: signals to the worker's group are the worker's
            random.seed()  # as RQ's child: not the worker's sequence
            self.setup_work_horse_signals()
            self._get_ready()
            with os.fdopen(orders_pipe, "rb") as orders:
                for served in range(1, self.runs_per_child + 1):
                    order = read_order(orders)
                    if order is None:
                        if self.release_child is not None:
                            self.release_child()
                        os._exit(0)
                    job, queue = self._take(order)
                    with logged_run(run_of_job(job)) if is_run_job(job) else nullcontext():
                        if served == self.runs_per_child:
                            self.main_work_horse(job, queue)
                        self._perform_and_stay(job, queue, done)
        except BaseException:  # noqa: BLE001 - a child must never carry on into its parent's work loop
            log.exception("the worker's child %s failed outside its job", os.getpid())
        os._exit(1)

    def _perform_and_stay(self, job: Job, queue: Queue, done: int) -> None:
        """RQ's main_work_horse, but the child stays: it reports the run done instead of exiting."""
        self._is_horse = True
        try:
            self.perform_job(job, queue, self.execution)
        except BaseException:  # noqa: BLE001 - as RQ's child: the worker records the death of its horse
            os._exit(1)
        report_done(done)

    def _get_ready(self) -> None:
        """Its own connections, opened before its job comes. One that fails is left to the job, which waits out
        outages of Redis and of the database as any job does."""
        with suppress(*REDIS_UNREACHABLE):
            self.connection.ping()
        if self.prepare_child is not None:
            try:
                self.prepare_child()
            except Exception as error:  # noqa: BLE001 - the job meets it again and says so
                log.debug("the worker's child %s could not get ready (%s); its job will try again", os.getpid(),
                          type(error).__name__)

    def _take(self, order: JobOrder) -> tuple[Job, Queue]:
        """The job and the execution RQ's worker prepared, read back from Redis in one round trip (as RQ's spawned
        children read them)."""
        job = self.job_class(order.job_id, connection=self.connection, serializer=self.serializer)
        execution = Execution(order.execution_id, order.job_id, connection=self.connection)
        with self.connection.pipeline(transaction=False) as pipeline:
            pipeline.hgetall(job.key)
            pipeline.hgetall(execution.key)
            job_data, execution_data = pipeline.execute()
        job.restore(job_data)
        execution.restore(execution_data)
        self.executions = {execution.id: execution}  # as forked, the worker's were the previous job's
        os.environ["RQ_JOB_ID"] = job.id
        queue = self.queue_class(order.queue_name, connection=self.connection, job_class=self.job_class,
                                 serializer=self.serializer, death_penalty_class=self.death_penalty_class)
        return job, queue

    def teardown(self) -> None:
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.dismiss()
        running, self._running = self._running, None
        if running is not None:  # the loop ended in a run (Redis lost): the child finishes it, finds no order, leaves
            running.close()
        super().teardown()

    def setup_work_horse_signals(self) -> None:
        """In the forked child: the parent's INTERRUPT_SIGNAL ends the child's run (it does not know which signal
        stopped the parent, so its reason does not say)."""
        super().setup_work_horse_signals()
        install_interrupt_handler(self._stop_reason)


WORKER_CLASSES = {"simple": CanvasSimpleWorker, "fork": CanvasForkWorker}


def run_stop_timeout(grace: float) -> float:
    """How long a stopping worker lets its run go on: the grace a supervisor gives it (CANVAS_SHUTDOWN_GRACE_SECONDS)
    less the time to record the run's end before the supervisor's SIGKILL."""
    return max(grace - SHUTDOWN_RECORD_MARGIN_SECONDS, grace / 2)


def is_run_job(job) -> bool:  # noqa: ANN001 - an RQ job
    """The runner's jobs (a run, one block of a run) name their run first; a callback delivery names no run."""
    from canvas.queueing.dispatch import BLOCK_JOB_FUNCTION, RUN_JOB_FUNCTION  # its models: loaded with the first job

    return job.func_name in (RUN_JOB_FUNCTION, BLOCK_JOB_FUNCTION) and bool(job.args)


def run_of_job(job) -> str:  # noqa: ANN001 - an RQ job
    return str(job.args[0])


def stop_on_signals(stop: threading.Event) -> None:
    """From here on SIGTERM/SIGINT only say "stop after this loop" (RQ's own handlers raise StopRequested); SIGHUP
    does what SIGTERM does, in RQ's loop too (RQ installs no handler for it)."""

    def request_stop(signum: int, _frame) -> None:  # noqa: ANN001
        log.info("received %s; worker stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    stop_on_hangup(as_sigterm)


class WorkerNameTakenError(RuntimeError):
    """Another live worker holds this worker's name."""


def _a_canvas_process(pid: int) -> bool:
    """A live process of Canvas's: not one that took over a dead worker's pid, where /proc can tell."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: alive, whatever it is
        return True
    try:
        return b"canvas" in Path(f"/proc/{pid}/cmdline").read_bytes()  # empty for a zombie
    except OSError:  # no /proc (macOS): alive is all that is known
        return True
