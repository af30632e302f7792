"""Everything that knows a Redis key: the ledger, workers' heartbeats, artifacts,
idempotency keys, job metrics, the broker's queues and how every part connects."""
