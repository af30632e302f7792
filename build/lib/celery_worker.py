"""The worker's entry point: ``celery -A celery_worker worker --loglevel=info``."""

import gc

from celery.signals import worker_process_init, worker_ready

from my_app import create_app

flask_app = create_app()
celery_app = flask_app.extensions["celery"]


@worker_ready.connect
@worker_process_init.connect
def freeze_start_up_objects(**_: object) -> None:
    """Take the start-up objects out of the garbage collector's sight, as gunicorn.conf.py
    does for web workers: the worker and each pool process stop re-walking them."""
    gc.freeze()
