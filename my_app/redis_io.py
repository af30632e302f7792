"""Redis commands for the API's hottest paths: several in one write, on this thread's connection.

Every submission and every status read sends one or two commands. redis-py's pipeline,
script and pool objects wrap each of those in bookkeeping (command stacks, retry
closures, a checkout that probes the socket, instrumentation) that costs more CPU than
the round trip itself. Here each thread keeps one connection per pool for these calls,
and returns it to its pool when the thread ends.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

import redis
from redis.commands.core import Script
from redis.connection import Connection, ConnectionPool
from redis.exceptions import NoScriptError


class _HeldConnections:
    """One thread's connections, by pool; given back to their pools when the thread ends."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.by_pool: weakref.WeakKeyDictionary[ConnectionPool, Connection] = (
            weakref.WeakKeyDictionary()
        )

    def __del__(self) -> None:
        if self.pid == os.getpid():  # a forked child must not touch its parent's sockets
            for pool, connection in list(self.by_pool.items()):
                pool.release(connection)


_threads = threading.local()


def held_connection(client: redis.Redis) -> Connection:
    """This thread's connection to ``client``'s Redis, checked out of its pool once."""
    held = getattr(_threads, "held", None)
    if held is None or held.pid != os.getpid():
        held = _threads.held = _HeldConnections()
    pool = client.connection_pool
    connection = held.by_pool.get(pool)
    if connection is None:
        connection = held.by_pool[pool] = pool.get_connection()
    return connection


def send_together(client: redis.Redis, commands: list[tuple[Any, ...]]) -> list[Any]:
    """The replies to ``commands``, sent in one write: one round trip for all of them.

    Like a non-transactional pipeline: each command runs on its own, and the first error
    reply is raised.
    """
    if not commands:
        return []
    connection = held_connection(client)

    def send_and_read() -> list[Any]:
        connection.send_packed_command(connection.pack_commands(commands))
        return [client.parse_response(connection, command[0]) for command in commands]

    try:
        # A dropped connection (a Redis restart) is reconnected and the commands resent,
        # as redis-py retries any command.
        return connection.retry.call_with_retry(send_and_read, lambda _: connection.disconnect())
    except BaseException:
        # Replies may be left unread on it: the next call starts on a fresh socket.
        connection.disconnect()
        raise


def run_script(client: redis.Redis, script: Script, keys: list[str], args: list[Any]) -> Any:
    """Run a registered Lua script (EVALSHA), loading it first if Redis lost it (a restart)."""
    try:
        return send_together(client, [("EVALSHA", script.sha, len(keys), *keys, *args)])[0]
    except NoScriptError:
        return script(keys=keys, args=args, client=client)  # loads it, then runs it
