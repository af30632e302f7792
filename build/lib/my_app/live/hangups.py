"""Noticing that an event stream's client went away while the stream has nothing to send.

WSGI tells an app that its client is gone only when a write fails, so a stream that
waits between changes would hold its place (a greenlet or thread, and its channels)
until its next heartbeat. Instead a waiting stream looks at its client's socket every
``EVENTS_CLIENT_CHECK_SECONDS``: a socket that reads as closed is a client that hung up.
gunicorn (``gunicorn.socket``) and werkzeug's development server (``werkzeug.socket``)
both hand the app that socket; under another server the stream notices at its next
heartbeat, as before.
"""

from __future__ import annotations

import select
import socket
from collections.abc import Callable
from typing import Any

SOCKET_KEYS = ("gunicorn.socket", "werkzeug.socket")
POLL_MILLISECONDS = 1


def hangup_check(environ: dict[str, Any]) -> Callable[[], bool]:
    """A function telling whether the client of this request has hung up (always False
    when the server does not expose the connection)."""
    connection = next((environ[key] for key in SOCKET_KEYS if key in environ), None)
    if not hasattr(connection, "fileno"):
        return lambda: False
    return lambda: hung_up(connection)


def hung_up(connection: socket.socket) -> bool:
    """Whether the peer closed ``connection``: it polls readable and a peek reads
    end-of-file. Bytes a client sends after its request are left where they are.

    poll, not select, has no limit on descriptor numbers. It waits up to a millisecond:
    gevent's poll (gunicorn's worker patches it in) looks at the socket only when the
    greenlet actually yields, which a zero timeout does not do.
    """
    try:
        poller = select.poll()
        poller.register(connection.fileno(), select.POLLIN)
        if not poller.poll(POLL_MILLISECONDS):
            return False
        return connection.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):  # reset, or already closed by the server
        return True
