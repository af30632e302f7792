"""The worker's side: running a job (progress, cancel, artifacts, limits), and the jobs."""
