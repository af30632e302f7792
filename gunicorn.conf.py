"""gunicorn settings for this service (``make serve``); gunicorn reads ./gunicorn.conf.py on
its own, and command-line flags override what is set here.

    make serve                      # HOST, PORT and REDIS_URL from the environment
    gunicorn                        # the same, run from the project folder

Threads carry the event streams: each open stream holds one thread of a web process for
as long as the browser listens, so a process has many (``WEB_THREADS``), while
``WEB_CONCURRENCY`` processes share the CPU.
"""

import gc
import os

wsgi_app = "my_app:create_app()"
bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("WEB_THREADS", "32"))
# An event stream is a long request: let gthread workers keep it for as long as it lasts.
timeout = 60
graceful_timeout = 30
keepalive = 5


def post_worker_init(worker: object) -> None:
    """Take the objects the app made at start-up out of the garbage collector's sight.

    A loaded app holds about 100,000 objects that live as long as the process (Flask,
    Celery, kombu, marshmallow, the PDF and image libraries). Under load, each full
    collection walked all of them, about 40 ms a time; frozen, they are never walked
    again. This is the use ``gc.freeze()`` is documented for.
    """
    gc.freeze()


def child_exit(server: object, worker: object) -> None:
    """Let prometheus_client drop a gone worker's live gauges (multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
