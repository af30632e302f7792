"""Headers on every response: the security headers, set by flask-talisman, and no Date
of the app's own (the server sends one).

The pages load only this site's own scripts and styles (no inline ones), cannot be
framed, and send no referrer to other sites. ReDoc alone injects its styles at run time,
so its page (and only it) allows inline styles; Swagger UI starts from a static script
(``templates/swagger_ui.html`` overrides flask-smorest's inline one).
"""

from __future__ import annotations

import functools
from typing import Any

from flask import Flask, Response

from ..extensions import talisman

CONTENT_SECURITY_POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}

#: ReDoc builds its styles in the browser (styled-components) and searches in a worker.
REDOC_CONTENT_SECURITY_POLICY = {
    **CONTENT_SECURITY_POLICY,
    "style-src": "'self' 'unsafe-inline'",
    "worker-src": "'self' blob:",
}

REDOC_ENDPOINT = "api-docs.openapi_redoc"


def init_app(app: Flask, *, production: bool) -> None:
    """Bind flask-talisman to ``app``: HSTS only in production, and only on HTTPS
    requests (directly, or ``X-Forwarded-Proto: https`` from the proxy)."""
    app.after_request(leave_the_date_to_the_server)
    talisman.init_app(
        app,
        # TLS is the proxy's job: redirecting here would loop behind one that speaks HTTP.
        force_https=False,
        frame_options="DENY",
        content_security_policy=CONTENT_SECURITY_POLICY,
        referrer_policy="strict-origin-when-cross-origin",
        strict_transport_security=production,
        session_cookie_secure=app.config["SESSION_COOKIE_SECURE"],
        session_cookie_samesite=app.config["SESSION_COOKIE_SAMESITE"],
        session_cookie_http_only=True,
        x_content_type_options=True,
        # Permissions-Policy: the pages use no camera, microphone, location or payments.
        permissions_policy={
            "camera": "()", "microphone": "()", "geolocation": "()", "payment": "()",
        },
    )  # fmt: skip
    redoc = app.view_functions.get(REDOC_ENDPOINT)
    if redoc is not None:
        # flask-smorest's view is a bound method, which cannot carry talisman's options.
        @talisman(content_security_policy=REDOC_CONTENT_SECURITY_POLICY)
        @functools.wraps(redoc)
        def redoc_page(**kwargs: Any) -> Any:
            return redoc(**kwargs)

        app.view_functions[REDOC_ENDPOINT] = redoc_page


def leave_the_date_to_the_server(response: Response) -> Response:
    """Drop the Date werkzeug's ``make_conditional`` adds (artifact downloads, static
    files): every WSGI server, werkzeug's and gunicorn, sends its own, and two Date
    lines make nginx warn (pallets/werkzeug#2500)."""
    del response.headers["Date"]
    return response
