"""gunicorn settings for this service (``make serve``); gunicorn reads ./gunicorn.conf.py on
its own, and command-line flags override what is set here.

    make serve                      # HOST, PORT and REDIS_URL from the environment
    gunicorn                        # the same, run from the project folder

gevent carries the event streams. An open stream waits for as long as its browser
listens; as a greenlet it costs a few kilobytes, so one process holds a thousand of them
(``WEB_CONNECTIONS``) while a status read still answers at once. gunicorn documents its
async workers for exactly this ("long blocking calls ... Comet"); a thread per stream
(gthread) would need a thousand OS threads per process. gunicorn's gevent worker
monkey-patches the standard library before it loads the app, so redis-py, kombu's
producer and the fan-out thread (my_app.live.fanout) cooperate without a change.
``WEB_CONCURRENCY`` processes share the CPU.
"""

import gc
import os

wsgi_app = "my_app:create_app()"
bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
worker_class = "gevent"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
#: Open connections (streams included) each process serves at once.
worker_connections = int(os.environ.get("WEB_CONNECTIONS", "1000"))
# A gevent worker tells the master it lives between requests too: an event stream may
# last far longer than this.
timeout = 60
graceful_timeout = 30
keepalive = 5
# gunicorn 25+ opens a control socket at one path per user; several servers on a machine
# (two apps, a benchmark, the tests) would fight over it, and nothing here uses it.
control_socket_disable = True


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
