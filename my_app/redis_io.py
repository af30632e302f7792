"""Redis commands for the API's hottest paths: several in one write, read in one pass.

redis-py's pipeline and script objects do the same with per-call bookkeeping (command
stacks, retry closures, instrumentation) that costs more than the round trip itself when
a request sends one or two commands, which is every submission and every status read.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError


def send_together(client: redis.Redis, commands: list[tuple[Any, ...]]) -> list[Any]:
    """The replies to ``commands``, sent in one write: one round trip for all of them.

    Like a non-transactional pipeline: each command runs on its own, and the first error
    reply is raised.
    """
    if not commands:
        return []
    pool = client.connection_pool
    connection = pool.get_connection()

    def send_and_read() -> list[Any]:
        connection.send_packed_command(connection.pack_commands(commands))
        return [client.parse_response(connection, command[0]) for command in commands]

    try:
        # Retried like any command after a dropped connection (a Redis restart).
        return connection.retry.call_with_retry(send_and_read, lambda _: connection.disconnect())
    except BaseException:
        connection.disconnect()  # replies may be left unread on it
        raise
    finally:
        pool.release(connection)


def run_script(client: redis.Redis, script: Script, keys: list[str], args: list[Any]) -> Any:
    """Run a registered Lua script (EVALSHA), loading it first if Redis lost it (a restart)."""
    try:
        return send_together(client, [("EVALSHA", script.sha, len(keys), *keys, *args)])[0]
    except NoScriptError:
        return script(keys=keys, args=args, client=client)  # loads it, then runs it
