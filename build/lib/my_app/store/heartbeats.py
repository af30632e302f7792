"""Workers' heartbeats: which workers are alive, the queues they consume and the tasks
they run, in one Redis hash, so a reader gets them in the same round trip as the tasks.

Each worker renews its field every third of the visibility timeout (my_app.worker.leases)
with the time it stops counting as alive; a worker that stops cleanly removes its field,
and a renewal prunes the fields of workers long gone.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import redis

from .keys import WORKERS

# KEYS: the workers hash. ARGV: hostname, heartbeat (JSON), now, keep (seconds).
# Writes the beat and drops the fields of workers whose heartbeat expired.
BEAT = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  local ok, beat = pcall(cjson.decode, fields[i + 1])
  if not ok or type(beat) ~= 'table' or tonumber(beat['until'] or 0) < tonumber(ARGV[3]) then
    redis.call('HDEL', KEYS[1], fields[i])
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""


class Heartbeats:
    """The workers' heartbeats in the ledger's Redis."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._beat = client.register_script(BEAT)

    def beat(self, hostname: str, queues: list[str], seconds: float, running: list[str]) -> None:
        """Note that ``hostname`` is alive for ``seconds``, consumes ``queues`` and runs
        the tasks ``running``."""
        now = time.time()
        at = datetime.fromtimestamp(now, UTC).isoformat()
        beat = {"queues": queues, "running": running, "at": at, "until": now + seconds}
        self._beat(keys=[WORKERS], args=[hostname, json.dumps(beat), now, max(1, round(seconds))])

    def gone(self, hostname: str) -> None:
        """Forget a worker that stopped cleanly: it consumes nothing from now on."""
        self.client.hdel(WORKERS, hostname)

    def read_in(self, pipe: redis.client.Pipeline) -> None:
        """Add the read of every heartbeat to ``pipe`` (decode its reply with ``decode``)."""
        pipe.hgetall(WORKERS)

    def live(self) -> dict[str, dict[str, Any]]:
        """Each live worker's heartbeat: its queues, running task ids and time."""
        return self.decode(self.client.hgetall(WORKERS))

    @staticmethod
    def decode(raw: dict[Any, Any]) -> dict[str, dict[str, Any]]:
        """The live workers among the raw heartbeats of ``read_in``, by hostname."""
        now = time.time()
        workers = {}
        for hostname, text in raw.items():
            try:
                beat = json.loads(text)
                if float(beat["until"]) >= now:
                    name = hostname.decode() if isinstance(hostname, bytes) else hostname
                    workers[name] = beat
            except (ValueError, KeyError, TypeError):
                continue  # not a heartbeat this version wrote: not alive
        return workers
