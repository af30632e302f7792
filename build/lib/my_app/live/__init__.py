"""Live updates: one Redis subscription per process fanned out to event streams, and
noticing a client that hung up."""
