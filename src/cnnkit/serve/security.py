"""Who may call the server: the bearer token (`--token` or `CNNKIT_TOKEN`) and the bind warning.

With a token set, every data endpoint (/predict, /explain, /info, /metrics) needs
`Authorization: Bearer <token>`, compared in constant time (`hmac.compare_digest`) so the answer
time says nothing about how much of a guess was right. /health stays open for load balancers, and
so do the page's own files, /docs and /openapi.json: they are the same for every cnnkit server and
carry no model or data, and a browser cannot send a header when it first opens a page (the page
asks for the token and sends it with every call).
"""
from __future__ import annotations

import hmac
import ipaddress
import os

from cnnkit.serve.limits import Rejected

TOKEN_ENV = "CNNKIT_TOKEN"


def resolve_token(token: str | None) -> str | None:
    """`--token`, else the CNNKIT_TOKEN environment variable, else None (no token needed)."""
    value = token if token is not None else os.environ.get(TOKEN_ENV)
    return value or None


def bind_warning(host: str, token: str | None) -> str | None:
    """The warning printed when the server listens beyond this machine without a token."""
    try:
        local = ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: only "localhost" is known to stay on this machine
        local = host == "localhost"
    if local or token:
        return None
    return (f"cnnkit serve: warning: listening on {host} without a token: anyone who can reach this port can "
            f"call the model. Set --token or {TOKEN_ENV}.")


def check_bearer(authorization: str | None, token: str | None) -> None:
    """Raises `Rejected` (401, with WWW-Authenticate) unless `authorization` is 'Bearer <token>'."""
    if token is None:
        return
    scheme, _, given = (authorization or "").partition(" ")
    ok = hmac.compare_digest(given.strip().encode(), token.encode()) and scheme.lower() == "bearer"
    if not ok:
        what = "is missing" if not authorization else "is wrong"
        raise Rejected(401, f"The bearer token {what}: send the header 'Authorization: Bearer <token>'.",
                       {"WWW-Authenticate": "Bearer"})
