"""`interactive-adapt serve` serves only its own page, probed as an attacker would: a real websocket client
(aiohttp, speaking wslink's protocol) against a real server on 127.0.0.1.

- Another web site's page (a foreign Origin), DNS rebinding (a foreign Host) and a page without Origin
  are refused before the websocket opens.
- A connection with a wrong token (trame's public default among them) is closed and receives nothing.
- With the token, only the page's own calls are answered: `application.exit` and the rest are refused
  and the server stays up; a failing call gets no traceback and no server path back.
- The page's Open trigger opens only the studies of the studies folder: `..`, absolute paths, a link out
  of the folder and FIFOs are refused with nothing read (every such target is a FIFO: had anything opened
  it, it would hang there, and the test would see its reader), then a listed study still opens.

One server for the whole file; a browser only for the last test (the page without its token).
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest

from InteractiveAdaptLib.io.volumes import Volume, write_volume

pytestmark = pytest.mark.slow

TECHNICAL = ("Traceback", 'File "', "site-packages", "/work/", "/tmp/")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from interactive_adapt_lab.web_browser import ServedApp

    folder = tmp_path_factory.mktemp("web-security")
    studies, outside = folder / "studies", folder / "outside"
    studies.mkdir()
    outside.mkdir()
    rng = np.random.default_rng(0)
    write_volume(
        Volume(rng.integers(0, 400, (12, 14, 16)).astype(np.int16), np.eye(4)), studies / "small.nii.gz"
    )
    os.mkfifo(studies / "pipe.nii.gz")
    os.mkfifo(outside / "secret.nii.gz")
    (studies / "link out.nii.gz").symlink_to(outside / "secret.nii.gz")
    with ServedApp(folder, studies=studies, site="Security test", exit_after_s=300) as app:
        app.wait_event("ready", timeout=120)
        app.url  # noqa: B018 (waits for the printed address)
        yield app, outside


class Probe:
    """A wslink client, as a script (or another page's JavaScript) would drive the server."""

    def __init__(self, app, origin: str | None = "own", host: str | None = None) -> None:
        self.app = app
        self.headers = {}
        if origin is not None:
            self.headers["Origin"] = app.origin if origin == "own" else origin
        if host is not None:
            self.headers["Host"] = host
        self.received: list[bytes] = []

    async def __aenter__(self) -> Probe:
        import aiohttp
        from wslink.chunking import UnChunker

        self.session = aiohttp.ClientSession()
        self.ws = await self.session.ws_connect(f"ws://127.0.0.1:{self.app.port}/ws", headers=self.headers)
        self.unchunker = UnChunker()
        self.unchunker.set_max_message_size(1 << 30)
        self.ids = 0
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ws.close()
        await self.session.close()

    async def call(self, method: str, *args, kwargs: dict | None = None, timeout: float = 20) -> dict | None:
        """The answer to one call; None if the server closed the connection instead."""
        import aiohttp
        import msgpack
        from wslink.chunking import generate_chunks

        self.ids += 1
        rpcid = "system:c0:0" if method == "wslink.hello" else f"rpc:c0:{self.ids}"
        message = {"wslink": "1.0", "id": rpcid, "method": method, "args": list(args), "kwargs": kwargs or {}}
        for chunk in generate_chunks(msgpack.packb(message), 0):
            await self.ws.send_bytes(chunk)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            received = await asyncio.wait_for(self.ws.receive(), deadline - time.monotonic())
            if received.type != aiohttp.WSMsgType.BINARY:
                return None  # closed
            self.received.append(received.data)
            answer = self.unchunker.process_chunk(received.data)
            if isinstance(answer, dict) and answer.get("id") == rpcid:
                return answer
        raise TimeoutError(f"no answer to {method}")

    async def listen(self, seconds: float) -> list[bytes]:
        """Whatever the server sends within `seconds` (until it closes the connection)."""
        import aiohttp

        deadline, got = time.monotonic() + seconds, []
        while time.monotonic() < deadline:
            try:
                received = await asyncio.wait_for(self.ws.receive(), deadline - time.monotonic())
            except TimeoutError:
                break
            if received.type != aiohttp.WSMsgType.BINARY:
                break
            got.append(received.data)
        return got


def _run(coroutine, timeout: float = 120):
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


def _alive(app) -> None:
    time.sleep(1.5)  # a stop scheduled by a refused call would have happened by now
    assert app.process.poll() is None, app.log_tail()

    async def answered() -> dict:
        async with Probe(app) as probe:
            assert "result" in await probe.call("wslink.hello", {"secret": app.token})
            return await probe.call("trame.state.get")

    assert "result" in _run(answered())


def _never_opened(fifo: Path) -> None:
    with pytest.raises(OSError) as raised:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    assert raised.value.errno == errno.ENXIO, f"something opened {fifo} for reading"


def _refused_handshake(app, **probe) -> int:
    import aiohttp

    async def connect() -> int:
        try:
            async with Probe(app, **probe):
                return 101
        except aiohttp.WSServerHandshakeError as refused:
            return refused.status

    return _run(connect())


# ------------------------------------------------------------------ before the websocket opens


@pytest.mark.parametrize(
    "origin", ["http://evil.example", "null", "http://127.0.0.1.evil.example", "http://localhost:1", None]
)
def test_a_foreign_page_cannot_open_the_websocket(served, origin):
    app, _ = served
    assert _refused_handshake(app, origin=origin) == 403
    _alive(app)


def test_dns_rebinding_is_refused(served):
    """A foreign name pointed at 127.0.0.1: the browser sends it as Host (and in the page's Origin)."""
    import urllib.error
    import urllib.request

    app, _ = served
    rebound = f"evil.example:{app.port}"
    assert _refused_handshake(app, origin=f"http://{rebound}", host=rebound) == 403
    request = urllib.request.Request(f"{app.origin}/index.html", headers={"Host": rebound})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403
    with urllib.request.urlopen(f"{app.origin}/index.html", timeout=10) as page:  # its own name: served
        assert page.status == 200


# ------------------------------------------------------------------ the token


@pytest.mark.parametrize("secret", ["wslink-secret", "", "x" * 43, None])
def test_a_wrong_token_gets_nothing_and_is_closed(served, secret):
    app, _ = served

    async def probe() -> tuple[dict | None, dict | None, list[bytes]]:
        async with Probe(app) as probe:
            hello = await probe.call("wslink.hello", {} if secret is None else {"secret": secret})
            state = await probe.call("trame.state.get")  # the connection is closed by now
            return hello, state, await probe.listen(2)

    hello, state, later = _run(probe())
    assert hello is not None and hello["error"]["message"] == "Authentication failed"
    assert state is None and later == []  # no state, no view frames
    _alive(app)


# ------------------------------------------------------------------ with the token


def test_only_the_page_s_calls_are_answered_and_errors_say_no_more(served):
    app, _ = served

    async def probe() -> list[dict | None]:
        async with Probe(app) as probe:
            assert "result" in await probe.call("wslink.hello", {"secret": app.token})
            answers = [
                await probe.call(method, *args)
                for method, args in [
                    ("application.exit", ()),
                    ("application.exit.later", (0,)),
                    ("trame.rca.push", ("Red", {}, b"frame")),
                    ("viewport.mouse.interaction", ({},)),
                    ("file.server.directory.list", ("/",)),
                ]
            ]
            mark = len(app.events())
            # The page's own life cycle only: not the server's (a second 'server ready' would open the
            # start study again and start a second loop).
            assert (await probe.call("trame.lifecycle.update", "server_ready"))["result"] is None
            await asyncio.sleep(1)
            assert not [e for e in app.events()[mark:] if e["event"] == "ready"]
            answers.append(await probe.call("trame.state.update", [5]))  # fails inside trame
            answers.append(await probe.call("trame.trigger", "key", [], {"bogus": 1}))  # fails in our code
            raw = b"".join(probe.received)
            return answers, raw

    answers, raw = _run(probe())
    for refused in answers[:5]:
        assert refused["error"]["message"] == "Unregistered method called" and "data" not in refused["error"]
    for failed in answers[5:]:
        assert failed["error"] == {"code": -32001, "message": "Exception raised"}
    for word in TECHNICAL:
        assert word.encode() not in raw, f"'{word}' was sent to the client"
    _alive(app)


def _open_trigger(state: dict) -> str:
    """The name of the trigger the page's Open button calls (read from the page's template)."""
    template = state["trame__template_main"]
    return re.search(r"trigger\('([^']+)', \[study_id, series_uid\]", template).group(1)


def test_the_open_trigger_reads_only_the_listed_studies(served):
    app, outside = served
    studies = app.wait_event("studies")
    assert studies["keys"] == ["small.nii.gz"]  # neither the FIFO nor the link out of the folder
    forged = [
        "../outside/secret.nii.gz",
        str(outside / "secret.nii.gz"),
        "link out.nii.gz",
        "pipe.nii.gz",
        "/etc/passwd",
        "/no/such/folder/scan.nii.gz",
        "small.nii.gz/../../outside/secret.nii.gz",
    ]
    mark = len(app.events())

    async def probe(keys: list) -> None:
        async with Probe(app) as probe:
            assert "result" in await probe.call("wslink.hello", {"secret": app.token})
            trigger = _open_trigger((await probe.call("trame.state.get"))["result"]["state"])
            for key in keys:
                answer = await probe.call("trame.trigger", trigger, [key, None], {})
                assert "error" not in answer, answer

    _run(probe(forged))
    deadline = time.monotonic() + 30
    while len([e for e in app.events()[mark:] if e["event"] == "status"]) < len(forged):
        assert time.monotonic() < deadline, app.log_tail()
        time.sleep(0.1)
    statuses = [e["text"] for e in app.events()[mark:] if e["event"] == "status"]
    for text in statuses:
        assert "cannot be opened" in text and "Press Refresh" in text, text
        assert "/" not in text, f"a path in the message: {text}"
    assert not [e for e in app.events()[mark:] if e["event"] == "study"]
    for fifo in (outside / "secret.nii.gz", app.studies / "pipe.nii.gz"):
        _never_opened(fifo)

    # The worker is free: the listed study opens.
    _run(probe(["small.nii.gz"]))
    assert app.wait_event("study", after=mark, timeout=60)["name"] == "small"
    _alive(app)


@pytest.mark.browser
def test_the_page_without_its_token_shows_nothing(served):
    from selenium.webdriver.common.by import By

    from interactive_adapt_lab.web_browser import BrowserPage, require_browser

    require_browser()
    app, _ = served
    with BrowserPage(f"{app.origin}/") as page:
        time.sleep(8)  # the page would have drawn its panel by now
        assert not page.driver.find_elements(By.ID, "ia-status")
    with BrowserPage(app.url) as page:  # with it: the panel
        page.wait_text("ia-studies-note", "1 study in 'studies'")
