"""Sending text messages through pluggable providers.

``base`` is the interface a provider implements, ``registry`` finds providers
through the ``twostep.sms_providers`` entry-point group, ``console``,
``webhook``, ``twilio`` and ``vonage`` are the built-in providers, and
``service`` is the Django side: the stored configuration, the abuse limits
and delivery with audit logging.
"""

from twostep.sms.base import (
    SMS_PROVIDER_API_VERSION,
    ConfigurationError,
    DeliveryReceipt,
    Option,
    SMSDeliveryError,
    SMSMessage,
    SMSProvider,
)

__all__ = [
    "SMS_PROVIDER_API_VERSION",
    "ConfigurationError",
    "DeliveryReceipt",
    "Option",
    "SMSDeliveryError",
    "SMSMessage",
    "SMSProvider",
]
