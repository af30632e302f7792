"""The caller's webhook signing secrets: read them to verify deliveries, rotate them."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint

from .. import webhooks
from ..owners import current_owner
from ..store.ledger import ledger_of
from .schemas import WebhookSecretsSchema

blp = Blueprint(
    "webhooks", __name__, url_prefix="/api/webhooks",
    description="The secrets your task webhooks are signed with (Standard Webhooks).",
)  # fmt: skip


@blp.route("/secret")
class WebhookSecret(MethodView):
    @blp.response(200, WebhookSecretsSchema)
    def get(self) -> dict[str, Any]:
        """Your signing secret (made on first use), to verify deliveries with any
        Standard Webhooks library"""
        return webhooks.webhook_settings(ledger_of().client, current_owner())

    @blp.response(200, WebhookSecretsSchema)
    def post(self) -> dict[str, Any]:
        """Rotate your signing secret: deliveries are signed with the new one and, for
        WEBHOOK_SECRET_GRACE_SECONDS, the previous one too"""
        grace = current_app.config["WEBHOOK_SECRET_GRACE_SECONDS"]
        return webhooks.rotate_secret(ledger_of().client, current_owner(), grace)
