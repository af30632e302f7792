"""The worker's entry point: ``celery -A celery_worker worker --loglevel=info``."""

from my_app import create_app

flask_app = create_app()
celery_app = flask_app.extensions["celery"]
