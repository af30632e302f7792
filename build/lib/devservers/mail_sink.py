"""A local SMTP server for development that keeps every message as a .eml file.

``python -m devservers.mail_sink`` listens on 127.0.0.1:MAIL_PORT (8025) and writes each
message to ``var/mail/``. With ``--if-unconfigured`` (``make up``) it starts nothing
when a MAIL_SERVER is set, so real mail goes to the real server.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from .embedded_redis import exit_on_sigterm, wait_for_signal

DEFAULT_PORT = 8025


class EmlDirectoryHandler:
    """aiosmtpd handler that saves each message, as received, to ``<directory>/<time>.eml``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Keep the message; the envelope's recipients go first as X-Envelope-To."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")
        path = self.directory / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        recipients = ", ".join(envelope.rcpt_tos)
        path.write_bytes(f"X-Envelope-To: {recipients}\r\n".encode() + envelope.original_content)
        return "250 Message accepted for delivery"


def start_sink(directory: Path, port: int, host: str = "127.0.0.1") -> Controller:
    """Start the sink in a background thread; ``.stop()`` it when done."""
    controller = Controller(EmlDirectoryHandler(directory), hostname=host, port=port)
    controller.start()
    return controller


def main(argv: list[str] | None = None) -> int:
    """Run the sink in the foreground until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("MAIL_PORT", DEFAULT_PORT)))
    parser.add_argument("--dir", default=os.environ.get("MAIL_SINK_DIR", "var/mail"))
    parser.add_argument("--if-unconfigured", action="store_true")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    configured = os.environ.get("MAIL_SERVER") or os.environ.get("FLASK_MAIL_SERVER")
    if args.if_unconfigured and configured:
        print(f"MAIL_SERVER is {configured}; not starting the local mail sink.", flush=True)
        return wait_for_signal()
    controller = start_sink(Path(args.dir), args.port)
    print(f"Mail sink on 127.0.0.1:{args.port}, saving messages to {args.dir}/", flush=True)
    try:
        return wait_for_signal()
    finally:
        controller.stop()


if __name__ == "__main__":
    sys.exit(main())
