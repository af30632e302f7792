"""Benchmarks: this service against the minimal Flask + Celery app of Flask's docs."""
