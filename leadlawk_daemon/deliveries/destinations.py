"""A configured destination as a sender: the one place that reads a destination's secret."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from leadlawk_daemon.deliveries.digest import Digest
from leadlawk_daemon.deliveries.email import EmailSender
from leadlawk_daemon.deliveries.errors import DeliveryRejected
from leadlawk_daemon.deliveries.filedrop import FileSender
from leadlawk_daemon.deliveries.webhook import WebhookSender
from leadlawk_daemon.logs import register_secret
from leadlawk_daemon.settings import (
    DeliveriesSettings,
    Destination,
    EmailDestination,
    FileDestination,
    WebhookDestination,
)
from leadlawk_daemon.sites.policy import EgressPolicy

__all__ = ["TOKEN_LENGTH", "Sender", "build_sender", "webhook_tokens"]

TOKEN_LENGTH = 16


def webhook_tokens(url: str) -> list[str]:
    """The parts of a webhook URL's path long enough to be a token (16 characters or more)."""
    path = url.split("://", 1)[-1].partition("/")[2].partition("?")[0]
    return [part for part in path.split("/") if len(part) >= TOKEN_LENGTH]


class Sender(Protocol):
    name: str

    async def send(self, digest: Digest) -> None:
        """Deliver, or raise :class:`.DestinationDown` (an outage) or :class:`.DeliveryRejected`."""
        ...

    async def aclose(self) -> None: ...


def _secret(name: str, key: str, variable: str, secrets: Mapping[str, str]) -> str:
    value = secrets.get(variable)
    if not value:
        raise DeliveryRejected(f"destination {name}: the environment variable {variable} ({key}) is not set")
    register_secret(value)  # masked in every log line from now on
    return value


def build_sender(
    name: str,
    config: Destination,
    deliveries: DeliveriesSettings,
    *,
    secrets: Mapping[str, str],
    policy: EgressPolicy,
    wall: Callable[[], float],
) -> Sender:
    if isinstance(config, WebhookDestination):
        secret = _secret(name, "secret_env", config.secret_env, secrets).encode()
        # A webhook URL's path often holds its own secret (Slack's, Discord's): its token-like parts
        # are masked like one (a short word such as /hooks would mask that word everywhere).
        for part in webhook_tokens(config.url):
            register_secret(part)
        return WebhookSender(
            name,
            config,
            secret=secret,
            page_size=deliveries.page_size,
            timeout=deliveries.timeout,
            policy=policy,
            wall=wall,
        )
    if isinstance(config, EmailDestination):
        password = None if config.password_env is None else _secret(name, "password_env", config.password_env, secrets)
        return EmailSender(name, config, password=password, timeout=deliveries.timeout)
    if isinstance(config, FileDestination):
        return FileSender(name, config)
    raise DeliveryRejected(f"destination {name}: unknown type")
