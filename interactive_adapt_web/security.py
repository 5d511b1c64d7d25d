"""What `interactive-adapt serve` lets in: its own page, opened with the address it printed, and nothing else.

- Host and Origin (every HTTP request, the websocket's included): the request must name this server by
  one of its own names and its port (`Host`), and a request made by a page (`Origin`) must come from this
  server's page. That refuses other web sites' pages in the same browser, and DNS rebinding (a foreign
  name made to point at this computer: its requests carry the foreign name as Host). The websocket must
  carry an Origin (browsers always send one).
- The token: made at each start, printed in the address (`?secret=...`), which trame's page sends in its
  first message (wslink's `hello`). A connection without the right token is closed and never receives
  anything: no state, no view frames. trame's own default secret is never accepted.
- Remote procedures: only those the page uses (its state, its triggers, the views' size and events);
  `application.exit` and the others wslink, trame and trame-rca register are refused.
- Errors: wslink sends a failing call's traceback to the caller; here the caller gets "Exception
  raised" and nothing more (the server's log keeps the rest).

What it does not do: encrypt (http; the token crosses the network in the clear with --allow-remote),
tell users apart (whoever has the address is the one user of this server), or limit what that user
does through the page.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import secrets
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from InteractiveAdaptLib.errors import InteractiveAdaptError

log = logging.getLogger(__name__)

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
WILDCARDS = ("0.0.0.0", "::", "")
# What trame's vue3 client and trame-rca's views call (wslink's hello is handled apart).
PAGE_RPCS = frozenset(
    {
        "trame.state.get",
        "trame.state.update",
        "trame.trigger",
        "trame.lifecycle.update",
        "trame.error.client",
        "trame.force.push",
        "trame.rca.size",
        "trame.rca.event",
        "trame.rca.drop",
        "trame.rca.reset",
        "trame.rca.video.codecs",
        "trame.rca.video.negotiate",
    }
)
HELLO_WAIT_S = 10.0  # a connection that has not given the token by then is closed
FORBIDDEN = "This server serves only its own page, opened with the address it printed."


def is_loopback(host: str) -> bool:
    """True for an address only this computer reaches (127.x, ::1, localhost)."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_listening(host: str, allow_remote: bool) -> None:
    """Refuse to listen beyond this computer unless the user said so (--allow-remote)."""
    if not is_loopback(host) and not allow_remote:
        raise InteractiveAdaptError(
            f"--host {host} would let other computers reach this page and the patient images it shows. "
            "If that is what you want (on a trusted network only), add --allow-remote: they will need the "
            "address with its token that the server prints. Otherwise leave --host out."
        )


def own_names(host: str, extra: Iterable[str] = ()) -> set[str]:
    """The names a request may give this server as Host: loopback names, the listening address, and
    with a remote address this computer's names and addresses plus `extra` (--server-name)."""
    names = {*LOOPBACK_NAMES, *extra}
    if host not in WILDCARDS:
        names.add(host)
    if not is_loopback(host):
        hostname = socket.gethostname()
        names |= {hostname, socket.getfqdn()}
        try:
            names |= {str(info[4][0]) for info in socket.getaddrinfo(hostname, None)}
        except OSError:
            pass
    return {name.strip("[]").lower() for name in names if name}


class PageGuard:
    """Checks every request of one server against its names, port and token (see the module's text)."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = {name.strip("[]").lower() for name in names}
        self.token = secrets.token_urlsafe(32)

    # ------------------------------------------------------------ the checks

    def host_allowed(self, host: str | None, port: int | None) -> bool:
        """True if a Host header names this server (one of its names, and the port it listens on)."""
        if not host or port is None:
            return False
        try:
            parts = urlsplit(f"//{host}")
            given = parts.port or 80
        except ValueError:
            return False
        return (parts.hostname or "") in self.names and given == port

    def origin_allowed(self, origin: str | None, host: str | None, port: int | None) -> bool:
        """True if a page's Origin is this server's own page (same name and port as the request's Host)."""
        if not origin or not self.host_allowed(host, port):
            return False
        try:
            parts = urlsplit(origin)
        except ValueError:
            return False
        return parts.scheme in ("http", "https") and parts.netloc.lower() == (host or "").lower()

    def token_valid(self, token: Any) -> bool:
        return isinstance(token, str) and hmac.compare_digest(token.encode(), self.token.encode())

    def url(self, name: str, port: int) -> str:
        """The address to open: the page, with the token."""
        name = f"[{name}]" if ":" in name else name
        return f"http://{name}:{port}/?secret={self.token}"

    # ------------------------------------------------------------ wiring into trame / wslink / aiohttp

    def install(self, server: Any) -> None:
        """Guard trame server `server`; call before it starts."""
        from wslink.websocket import LinkProtocol

        guard = self

        class TokenCheck(LinkProtocol):
            """wslink asks the protocols that have `validateToken` instead of comparing with its default."""

            async def validateToken(self, token: Any, client_id: str) -> bool:  # noqa: N802 (wslink's name)
                return guard.token_valid(token)

        server.add_protocol_to_configure(lambda protocol: protocol.registerLinkProtocol(TokenCheck()))
        server.controller.on_server_bind.add(self._bind)

    def _bind(self, web_server: Any) -> None:
        """wslink's aiohttp server, before it listens: the request check, and the websocket's limits."""
        from aiohttp import web

        @web.middleware
        async def check(request: web.Request, handler: Any) -> web.StreamResponse:
            host, origin = request.headers.get("Host"), request.headers.get("Origin")
            sockname = request.transport.get_extra_info("sockname") if request.transport else None
            port = sockname[1] if sockname else None
            websocket = request.headers.get("Upgrade", "").lower() == "websocket"
            if not self.host_allowed(host, port) or (
                (websocket or origin is not None) and not self.origin_allowed(origin, host, port)
            ):
                log.warning("Refused a request for %s (Host %r, Origin %r).", request.path, host, origin)
                return web.Response(status=403, text=FORBIDDEN)
            return await handler(request)

        web_server.app.middlewares.append(check)
        for handler in getattr(web_server, "_ws_handlers", []):
            _restrict(handler)


def _restrict(handler: Any) -> None:
    """Limit one wslink websocket handler: the page's calls only, no error details, and a connection
    closed when it does not give the token (at once if wrong, after HELLO_WAIT_S if it never does)."""
    handler.functionMap = {uri: f for uri, f in handler.functionMap.items() if uri in PAGE_RPCS}
    if (
        "trame.lifecycle.update" in handler.functionMap
    ):  # it calls the controller's `on_<name>`: the page's only
        protocol, update = handler.functionMap["trame.lifecycle.update"]

        def client_life_cycle(self: Any, name: Any) -> None:
            if isinstance(name, str) and name.startswith("client_"):
                update(self, name)

        handler.functionMap["trame.lifecycle.update"] = (protocol, client_life_cycle)
    send_error, system, connect = handler.sendWrappedError, handler.handleSystemMessage, handler.onConnect

    async def error_without_details(rpcid, code, message, data=None, client_id=None):  # noqa: ANN001
        await send_error(rpcid, code, message, None, client_id=client_id)

    async def close(client_id: str) -> None:
        connection = handler.connections.get(client_id)
        if connection is not None and not handler.isClientAuthenticated(client_id):
            from aiohttp import WSCloseCode

            await connection.close(code=WSCloseCode.POLICY_VIOLATION, message=b"Authentication failed")

    async def hello(rpcid, method, args, client_id):  # noqa: ANN001
        handled = await system(rpcid, method, args, client_id)
        if handled and not handler.isClientAuthenticated(client_id):
            log.warning("Refused a connection without the right token.")
            await close(client_id)
        return handled

    async def on_connect(request, client_id):  # noqa: ANN001
        await connect(request, client_id)
        asyncio.get_running_loop().call_later(HELLO_WAIT_S, lambda: asyncio.ensure_future(close(client_id)))

    handler.sendWrappedError = error_without_details
    handler.handleSystemMessage = hello
    handler.onConnect = on_connect
