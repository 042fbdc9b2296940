"""The ``console`` provider: writes each message to the server log.  Debug mode only.

It is the one provider that shows message bodies (and so codes) anywhere,
which is why it refuses to start unless the server runs in debug mode.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import ClassVar, Self

import httpx

from twostep.sms.base import ConfigurationError, DeliveryReceipt, Option, SMSMessage

logger = logging.getLogger("twostep.sms.console")


class ConsoleProvider:
    name: ClassVar[str] = "console"
    label: ClassVar[str] = "Server log (development only)"
    options: ClassVar[tuple[Option, ...]] = ()

    @classmethod
    def from_options(cls, options: Mapping[str, str], *, http: httpx.Client | None = None, debug: bool = False) -> Self:
        """Raises ConfigurationError unless ``debug`` is on."""
        if not debug:
            raise ConfigurationError(
                "The console provider writes codes to the server log; it works only in debug mode."
            )
        return cls()

    def send(self, message: SMSMessage) -> DeliveryReceipt:
        message_id = secrets.token_hex(8)
        logger.warning("SMS %s to %s from %r: %s", message_id, message.to, message.sender, message.body)
        return DeliveryReceipt(self.name, message_id)

    def close(self) -> None:
        return None
