"""gunicorn settings for this service; gunicorn reads ./gunicorn.conf.py on its own.

    gunicorn -w 4 -b 127.0.0.1:8000 'my_app:create_app()'
"""

import gc


def post_worker_init(worker: object) -> None:
    """Take the objects the app made at start-up out of the garbage collector's sight.

    A loaded app holds about 100,000 objects that live as long as the process (Flask,
    Celery, kombu, marshmallow, the PDF and image libraries). Under load, each full
    collection walked all of them, about 40 ms a time; frozen, they are never walked
    again. This is the use ``gc.freeze()`` is documented for.
    """
    gc.freeze()
