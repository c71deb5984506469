"""The bearer token of the HTTP ingresses: the worker's (AGENT_SRE_HTTP_TOKEN) and
`functions serve`'s (AGENT_SRE_FUNCTIONS_HTTP_TOKEN), checked the same way."""

from __future__ import annotations

import hmac

from pydantic import SecretStr

CHALLENGE = {"WWW-Authenticate": "Bearer"}
REFUSAL = "send `Authorization: Bearer <token>` with the configured token"


def token_of(secret: SecretStr | None) -> bytes | None:
    """The configured token; None when there is none (unset, or empty)."""
    if secret is None:
        return None
    return secret.get_secret_value().encode() or None


def authorized(authorization: str, token: bytes | None) -> bool:
    """Whether an `Authorization` header carries `token` (constant-time); anything goes without one."""
    if token is None:
        return True
    scheme, _, credentials = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), token)
