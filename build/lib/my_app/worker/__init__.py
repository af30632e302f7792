"""The worker's side: running a job (start, progress, cancel, artifacts, limits) and the
leases and heartbeat that say it is alive."""
