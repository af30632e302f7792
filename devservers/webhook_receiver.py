"""A webhook receiver for development: verifies each delivery with the standardwebhooks
library, prints the event, and answers 204 (401 for a forged one).

``python -m devservers.webhook_receiver --secret whsec_...`` listens on
127.0.0.1:8099; point a submission's ``callback_url`` at http://127.0.0.1:8099/hooks
(with ``WEBHOOK_ALLOWED_HOSTS`` allowing 127.0.0.1, since it is a loopback address).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from werkzeug.serving import run_simple
from werkzeug.wrappers import Request, Response

DEFAULT_PORT = 8099


def receiver(secret: str, out: Any = sys.stdout) -> Any:
    """A WSGI app that verifies and prints each delivery."""
    webhook = Webhook(secret)

    @Request.application
    def receive(request: Request) -> Response:
        try:
            event = webhook.verify(request.get_data(), dict(request.headers))
        except WebhookVerificationError as error:
            print(f"refused {request.headers.get('webhook-id')}: {error}", file=out, flush=True)
            return Response(status=401)
        data = event.get("data", {})
        line = {"webhook-id": request.headers.get("webhook-id"), "type": event.get("type"),
                "task": data.get("id"), "state": data.get("state")}  # fmt: skip
        print(json.dumps(line), file=out, flush=True)
        return Response(status=204)

    return receive


def main(argv: list[str] | None = None) -> None:
    """Serve the receiver until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--secret", required=True, help="the whsec_... from GET /api/webhooks/secret"
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    run_simple("127.0.0.1", args.port, receiver(args.secret))


if __name__ == "__main__":
    main()
