"""Which requests may open or join a session: the check of their Host and Origin.

A web page elsewhere can reach a server on this machine by DNS rebinding: its own name, made
to resolve to 127.0.0.1, is then same-origin with itself. Tornado 6.6 accepts a websocket
whose Origin equals its Host (or whose Sec-Fetch-Site says same-origin) without asking Bokeh's
``--allow-websocket-origin`` list, so such a page could open a session and read the data.
Every request for a page, its websocket or its autoload script is therefore checked first:
its Host, and its Origin when it has one, must be an allowed host. Allowed are localhost,
127.0.0.1 and [::1] on the port the request came in on, and whatever ``--allow-websocket-origin``
allows (the name a class uses, a reverse proxy's). Anything else gets 403, before a session
is made.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Mapping
from urllib.parse import urlsplit

from bokeh.server.util import check_allowlist

log = logging.getLogger("pixel_evidence.dashboard")

LOOPBACK = ("localhost", "127.0.0.1", "[::1]")


def allowed_hosts(allowlist: Iterable[str], port: int | None) -> list[str]:
    """The operator's allowlist (Bokeh's, ``host:port`` patterns) and the loopback names on ``port``."""
    return [*allowlist, *(f"{name}:{port}" for name in LOOPBACK if port is not None)]


def refusal(headers: Mapping[str, str], allowlist: Iterable[str], port: int | None) -> str:
    """Why a request with these headers may not open or join a session ("" when it may)."""
    allowed = allowed_hosts(allowlist, port)
    host = headers.get("Host", "")
    if not host or not check_allowlist(host.lower(), allowed):
        return f"Host {host!r} is not an allowed host"
    origin = headers.get("Origin")
    if origin is not None:  # browsers send it with every websocket; other clients choose their Host anyway
        netloc = urlsplit(origin).netloc.lower()
        if not netloc or not check_allowlist(netloc, allowed):
            return f"Origin {origin!r} is not an allowed host"
    return ""


def _port(request: Any) -> int | None:
    """The server's port the request came in on (None if its socket is gone)."""
    try:
        return request.connection.stream.socket.getsockname()[1]
    except (AttributeError, OSError):
        return None


def _checked(prepare: Any) -> Any:
    async def prepare_if_allowed(self: Any) -> None:
        why = refusal(self.request.headers, self.application.websocket_origins, _port(self.request))
        if why:
            log.warning("refused %s %s: %s", self.request.method, self.request.path, why)
            self.set_status(403)
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish(f"{why} (see --allow-websocket-origin)")
            return
        result = prepare(self)
        if result is not None:
            await result

    prepare_if_allowed.checks_hosts = True
    return prepare_if_allowed


def check_hosts() -> None:
    """Check every later request for a page, its websocket or its autoload script of the Panel
    servers in this process (their handlers are changed in place, so a server that is already
    listening checks from its next request on). Once per process; later calls do nothing."""
    from panel.io.server import AutoloadJsHandler, DocHandler, WSHandler

    for handler in (DocHandler, WSHandler, AutoloadJsHandler):
        if not getattr(handler.prepare, "checks_hosts", False):
            handler.prepare = _checked(handler.prepare)
