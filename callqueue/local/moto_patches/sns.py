"""Work around a moto gap in SNS (harness only): a certificate signed for every delivery."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509 import CertificateBuilder


def speed_up_sns() -> None:
    """Work around a moto gap (harness only): for every message it delivers to a subscription
    moto builds and signs a new X.509 certificate (milliseconds of CPU each, three
    subscriptions a response). SNS signs with one certificate; so does this, made once per key."""
    sign = CertificateBuilder.sign
    made: dict[bytes, Any] = {}

    def sign_once(builder: CertificateBuilder, key: Any, *args: Any, **kwargs: Any) -> Any:
        public = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        if public not in made:
            made[public] = sign(builder, key, *args, **kwargs)
        return made[public]

    CertificateBuilder.sign = sign_once  # type: ignore[method-assign,assignment]
