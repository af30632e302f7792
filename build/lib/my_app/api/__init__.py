"""The task API: jobs as documented resources under ``/api/tasks``."""
