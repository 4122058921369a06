"""Who may do what over HTTP: the control token (``Authorization: Bearer``) and the view token (page, image, stream).

Controls (pause, resume, reload) accept only the ``Authorization`` header, so a
browser's cookie can never trigger them from another site. With
``service.token_for_view`` the page, the image, the stream and the console data
also need the token: as the same header, as ``?token=`` (for a video player or a
script), or as the cookie the login form sets, which holds a digest of the token,
never the token itself.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

VIEW_COOKIE = "sorter_view"


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    if not header or not header.startswith("Bearer "):
        return None
    return header.removeprefix("Bearer ").strip()


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def control_allowed(token: str | None, header: str | None) -> tuple[bool, int, str]:
    """``(allowed, http_status, why)`` for a control request with ``header`` when the service's token is ``token``."""
    if token is None:
        return False, 403, "controls are disabled: set service.token in the config or SORTER_TOKEN in the environment"
    given = bearer(header)
    if given is None:
        return False, 401, "send 'Authorization: Bearer <token>'"
    if not _same(given, token):
        return False, 401, "wrong token"
    return True, 200, ""


def view_cookie_value(token: str) -> str:
    """The cookie that proves the browser was given the token (a keyed digest: the token is not stored in it)."""
    return hmac.new(token.encode(), b"sorter view cookie v1", hashlib.sha256).hexdigest()


def view_allowed(token: str | None, required: bool, header: str | None, query: Mapping[str, str],
                 cookies: Mapping[str, str]) -> bool:
    """Whether a request may see the page, the image, the stream and the console data."""
    if not required:
        return True
    if token is None:  # refused at start-up; never open by accident
        return False
    given = bearer(header) or query.get("token")
    if given is not None and _same(given, token):
        return True
    cookie = cookies.get(VIEW_COOKIE)
    return cookie is not None and _same(cookie, view_cookie_value(token))
