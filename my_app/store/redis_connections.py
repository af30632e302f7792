"""How the service reaches its Redis: one address (``redis://``, ``rediss://``,
``unix://``), or Redis Sentinels that name the current primary.

A Sentinel address is Celery's form: ``sentinel://host:26379/0;sentinel://host2:26379/0``
(a password, if the primary wants one, in the first: ``sentinel://:secret@host:26379/0``),
and ``REDIS_SENTINEL_SERVICE`` names the primary the Sentinels monitor. The ledger's
clients, Celery's broker and result backend, and the rate limits all ask the Sentinels
for the primary, and again after a failover.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import redis
from redis.sentinel import Sentinel

SENTINEL_SCHEME = "sentinel"
#: What separates the Sentinels in one address (Celery's and kombu's separator).
SENTINEL_SEPARATOR = ";"
SENTINEL_PORT = 26379


def is_sentinel(url: str) -> bool:
    """Whether ``url`` names Redis Sentinels rather than a Redis."""
    return urlsplit(url).scheme == SENTINEL_SCHEME


@dataclass(frozen=True)
class SentinelAddress:
    """The Sentinels of a ``sentinel://`` address, and the database and login of the
    primary they name."""

    sentinels: tuple[tuple[str, int], ...]
    db: int
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> SentinelAddress:
        """Read a ``sentinel://host:port/db;sentinel://host2:port/db`` address."""
        parts = [urlsplit(chunk) for chunk in url.split(SENTINEL_SEPARATOR) if chunk]
        first = parts[0]
        return cls(
            sentinels=tuple((part.hostname, part.port or SENTINEL_PORT) for part in parts),
            db=int(first.path.lstrip("/") or 0),
            username=unquote(first.username) if first.username else None,
            password=unquote(first.password) if first.password else None,
        )


def redis_client(
    url: str, service: str, *, max_connections: int, timeout: float, **options: Any
) -> redis.Redis:
    """A client of the Redis at ``url``, or of the primary the Sentinels at ``url`` name
    (``service``); ``options`` are redis-py connection options.

    A plain address gets a BlockingConnectionPool of ``max_connections``, where a request
    waits up to ``timeout`` for a free connection. Behind Sentinels the pool is
    redis-py's SentinelConnectionPool, which follows failovers but does not block, so it
    is left unbounded rather than answer "Too many connections".
    """
    if not is_sentinel(url):
        pool = redis.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=timeout, **options
        )
        return redis.Redis(connection_pool=pool)
    address = SentinelAddress.parse(url)
    timeouts = {
        name: options[name]
        for name in ("socket_timeout", "socket_connect_timeout")
        if name in options
    }
    sentinels = Sentinel(list(address.sentinels), sentinel_kwargs=timeouts, **timeouts)
    return sentinels.master_for(
        service, db=address.db, username=address.username, password=address.password,
        **options,
    )  # fmt: skip


def limiter_storage_uri(url: str, service: str) -> str:
    """The address Flask-Limiter's storage (the ``limits`` library) takes for ``url``:
    the same for a plain Redis, ``redis+sentinel://host:port,host2:port/service``
    behind Sentinels."""
    if not is_sentinel(url):
        return url
    address = SentinelAddress.parse(url)
    login = f":{quote(address.password, safe='')}@" if address.password else ""
    hosts = ",".join(f"{host}:{port}" for host, port in address.sentinels)
    return f"redis+sentinel://{login}{hosts}/{service}"


def redbeat_settings(url: str, service: str, options: dict[str, Any]) -> dict[str, Any]:
    """celery-redbeat's Redis settings for ``url``: the address as is, or behind
    Sentinels its ``redis-sentinel://`` form with the Sentinels, the service and the
    database in its options."""
    if not is_sentinel(url):
        return {"redbeat_redis_url": url, "redbeat_redis_options": options}
    address = SentinelAddress.parse(url)
    host, port = address.sentinels[0]
    sentinel_options = {
        **options,
        "sentinels": list(address.sentinels),
        "service_name": service,
        "db": address.db,
        "password": address.password,
    }
    if address.username:
        sentinel_options["username"] = address.username
    return {
        "redbeat_redis_url": f"redis-sentinel://{host}:{port}/{address.db}",
        "redbeat_redis_options": sentinel_options,
    }
