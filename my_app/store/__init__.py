"""Everything that knows a Redis key: the ledger, task records, artifacts, idempotency."""
