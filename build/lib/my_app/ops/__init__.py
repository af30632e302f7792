"""Operations: health checks, metrics, logs, tracing and security headers."""
