"""VAPID key pairs (RFC 8292) for Web Push: P-256, the private key as pywebpush takes it and the public key
as a browser's `applicationServerKey` wants it, both base64url without padding."""

import base64

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def new_key_pair() -> tuple[str, str]:
    """(public, private): a fresh key pair."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_numbers().private_value.to_bytes(32, "big")
    public = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return b64url(public), b64url(private)
