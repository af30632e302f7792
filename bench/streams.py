"""Many event-stream clients at once, for the streaming figure: one asyncio loop in a
thread of its own, each stream a plain HTTP/1.0 connection (so the server neither chunks
nor keeps it alive), reading ``data:`` lines as a browser's EventSource would."""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

#: How many streams connect at once while they open (a browser fleet does not arrive in
#: one millisecond either).
OPENING_BATCH = 100


@dataclass
class Stream:
    """What one client received."""

    path: str
    states: list[str] = field(default_factory=list)
    progress: set[int] = field(default_factory=set)
    ended: bool = False
    error: str | None = None


class StreamClients:
    """``count`` clients spread over ``paths``, opened with ``open()`` (which returns once
    each has received its first event) and read until the server ends each stream."""

    def __init__(self, base_url: str, paths: list[str], count: int) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname, parts.port
        self.streams = [Stream(paths[n % len(paths)]) for n in range(count)]
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.opened = 0
        self.all_opened = threading.Event()
        self.readers: list[asyncio.Future] = []

    def open(self, timeout: float = 120) -> None:
        """Connect every stream; return when each has its first event."""
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.connect_all(), self.loop)
        if not self.all_opened.wait(timeout):
            raise RuntimeError(f"only {self.opened} of {len(self.streams)} streams opened")

    async def connect_all(self) -> None:
        for first in range(0, len(self.streams), OPENING_BATCH):
            batch = self.streams[first : first + OPENING_BATCH]
            opened = [asyncio.Event() for _ in batch]
            self.readers += [
                asyncio.ensure_future(self.read(stream, event))
                for stream, event in zip(batch, opened, strict=True)
            ]
            await asyncio.gather(*(event.wait() for event in opened))

    async def read(self, stream: Stream, opened: asyncio.Event) -> None:
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port, limit=2**22)
            writer.write(
                f"GET {stream.path} HTTP/1.0\r\nHost: {self.host}\r\n"
                "Accept: text/event-stream\r\n\r\n".encode()
            )
            status = await reader.readline()
            if b" 200 " not in status:
                raise RuntimeError(status.decode(errors="replace").strip())
            while await reader.readline() not in (b"\r\n", b""):
                pass  # the headers
            while line := await reader.readline():
                if line.startswith(b"data: "):
                    self.record(stream, json.loads(line[6:]), opened)
            stream.ended = True
            writer.close()
        except Exception as error:  # counted as a stream that missed updates
            stream.error = repr(error)
        finally:
            self.record_opened(opened)

    def record(self, stream: Stream, event: dict[str, Any], opened: asyncio.Event) -> None:
        stream.states.append(event["state"])
        if event["state"] == "PROGRESS" and event.get("progress"):
            stream.progress.add(event["progress"]["current"])
        self.record_opened(opened)

    def record_opened(self, opened: asyncio.Event) -> None:
        if not opened.is_set():
            opened.set()
            self.opened += 1
            if self.opened == len(self.streams):
                self.all_opened.set()

    def wait_ended(self, timeout: float) -> None:
        """Wait for every stream to end (the server closes each after a final state)."""
        done = asyncio.run_coroutine_threadsafe(
            asyncio.wait_for(asyncio.gather(*self.readers), timeout), self.loop
        )
        try:
            done.result(timeout + 5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
