"""A small TCP proxy (stdlib asyncio) in front of a test server: it adds round-trip
latency, counts how many connections are open at once, and can cut a connection
mid-response, to test and measure transfers against moto and fake-gcs-server.

It counts requests in flight: a request starts when its first byte reaches the
proxy and ends just before the last byte of its response leaves it (read from the
HTTP/1.x framing: Content-Length, chunks, or the connection's end), so what it counts
never exceeds what the client had in flight.

In a test (the proxy runs on its own event loop in a thread)::

    with Proxy(server_url, latency=0.02) as proxy:   # 20 ms round trip
        ... use proxy.url as the endpoint ...
        proxy.peak                                   # most connections open at once

For a benchmark, in its own process (so it does not share the client's GIL)::

    python tests/helpers/proxy.py URL --latency 0.02   # prints the proxy's URL
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import sys
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

__all__ = ["Proxy"]

READ = 1 << 18


class Proxy:
    """Relay 127.0.0.1:<port> to ``target`` (``http://host:port``).

    ``latency`` is the added round trip in seconds (half each way). When
    ``cut_after`` is set, a connection that has relayed more than that many bytes from
    the server is aborted, both ways, as a server that dies mid-transfer would be.
    """

    def __init__(
        self, target: str, *, latency: float = 0.0, cut_after: int | None = None
    ) -> None:
        parts = urlsplit(target)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.latency = latency
        self.cut_after = cut_after
        self.open = 0  # connections open now
        self.in_flight = 0  # requests sent on and not yet answered
        self.peak = 0  # the most requests in flight at once
        self.requests = 0  # requests seen
        self.accepted = 0
        self.cuts = 0
        self.url = ""
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None

    # -- life -------------------------------------------------------------------------
    def start(self) -> str:
        """Start relaying in a thread; the proxy's URL."""
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._server = loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", 0)
            )
            port = self._server.sockets[0].getsockname()[1]
            self.url = f"http://127.0.0.1:{port}"
            ready.set()
            loop.run_forever()
            self._server.close()
            loop.run_until_complete(_cancel_all())
            loop.close()

        self._thread = threading.Thread(target=run, name="test-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the test proxy did not start within 10 s")
        return self.url

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None

    def reset(self) -> None:
        """Forget the counts so far (requests still in flight stay counted)."""
        with self._lock:
            self.peak = self.in_flight
            self.requests = 0
            self.accepted = 0
            self.cuts = 0

    def __enter__(self) -> Proxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- relaying ---------------------------------------------------------------------
    def _count(self, connections: int = 0, requests: int = 0) -> None:
        with self._lock:
            self.open += connections
            self.accepted += max(connections, 0)
            self.in_flight += requests
            self.requests += max(requests, 0)
            self.peak = max(self.peak, self.in_flight)

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        self._count(connections=+1)
        exchanges = _Exchanges()
        try:
            try:
                sr, sw = await asyncio.open_connection(self.host, self.port)
            except OSError:
                cw.close()
                return
            aborted = False
            sent = 0

            def abort() -> None:
                nonlocal aborted
                aborted = True
                with self._lock:
                    self.cuts += 1
                for w in (cw, sw):
                    w.transport.abort()

            def request(data: bytes) -> tuple[bool, int]:
                if exchanges.request(data):
                    self._count(requests=+1)
                return False, 0

            def response(data: bytes) -> tuple[bool, int]:
                nonlocal sent
                sent += len(data)
                cut = self.cut_after is not None and sent > self.cut_after
                return cut, 0 if cut else exchanges.response(data)

            def answered(n: int) -> None:
                exchanges.answered(n)
                self._count(requests=-n)

            up = asyncio.ensure_future(self._relay(cr, sw, request, abort, answered))
            down = asyncio.ensure_future(self._relay(sr, cw, response, abort, answered))
            await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
            if not aborted:
                await asyncio.wait([up, down], timeout=0.5)
            for t in (up, down):
                t.cancel()
            await asyncio.gather(up, down, return_exceptions=True)
            for w in (cw, sw):
                with contextlib.suppress(Exception):
                    w.close()
        except asyncio.CancelledError:
            pass  # the proxy is stopping
        finally:
            self._count(connections=-1, requests=-exchanges.open)
            exchanges.open = 0

    async def _relay(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        watch: Callable[[bytes], tuple[bool, int]],
        abort: Callable[[], None],
        answered: Callable[[int], None],
    ) -> None:
        """Copy ``reader`` to ``writer``, each piece held back half the round trip.

        ``watch(piece)`` says whether to cut the connection here and how many responses
        the piece completes; ``answered(n)`` runs just before such a piece is handed on,
        so a client that starts its next request once it has its response finds this
        one already over.
        """
        loop = asyncio.get_running_loop()
        pending: collections.deque[tuple[float, bytes, int]] = collections.deque()
        more = asyncio.Event()
        delay = self.latency / 2

        async def deliver() -> None:
            while True:
                while not pending:
                    more.clear()
                    await more.wait()
                due, data, ends = pending.popleft()
                if not data:
                    with contextlib.suppress(OSError):
                        writer.write_eof()
                    return
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if ends:
                    answered(ends)
                writer.write(data)
                await writer.drain()

        sender = asyncio.ensure_future(deliver())
        try:
            while True:
                data = await reader.read(READ)
                cut, ends = watch(data) if data else (False, 0)
                if cut:
                    abort()
                    return
                pending.append((loop.time() + delay, data, ends))
                more.set()
                if not data:
                    break
            await sender
        except (ConnectionError, OSError):
            pass
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)


async def _cancel_all() -> None:
    """Cancel every other task on the running loop and wait for them to end."""
    tasks = asyncio.all_tasks() - {asyncio.current_task()}
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class _Exchanges:
    """Where each HTTP/1.x request on one connection starts and its response ends (one
    request at a time: clients do not pipeline). A response ends after its
    Content-Length, its last chunk, or with the connection."""

    def __init__(self) -> None:
        self.open = 0  # requests seen and not yet answered (to the client)
        self.busy = False  # a request was seen and its response is not parsed to its end
        self.methods: collections.deque[bytes] = collections.deque()
        self.buf = b""
        self.mode = "head"
        self.left = 0

    def request(self, data: bytes) -> bool:
        """The client sent ``data``: True when it starts a new request."""
        if self.busy:
            return False
        self.busy = True
        self.open += 1
        self.methods.append(data.split(b" ", 1)[0])
        return True

    def answered(self, n: int) -> None:
        self.open -= n

    def response(self, data: bytes) -> int:
        """The server sent ``data``: how many responses it completes."""
        self.buf += data
        done = 0
        while self.buf:
            if self.mode == "head":
                i = self.buf.find(b"\r\n\r\n")
                if i < 0:
                    break
                head, self.buf = self.buf[:i].lower(), self.buf[i + 4 :]
                status = int(head.split(b" ", 2)[1])
                if 100 <= status < 200:
                    continue  # 100 Continue: the real response follows
                method = self.methods.popleft() if self.methods else b"GET"
                fields = {
                    k.strip(): v.strip()
                    for k, _, v in (line.partition(b":") for line in head.split(b"\r\n")[1:])
                }
                if method == b"HEAD" or status in (204, 304):
                    self.left, self.mode = 0, "body"
                elif b"content-length" in fields:
                    self.left, self.mode = int(fields[b"content-length"]), "body"
                elif fields.get(b"transfer-encoding") == b"chunked":
                    self.mode = "size"
                else:
                    self.mode = "eof"  # ends with the connection
            if self.mode == "eof":
                self.buf = b""
                break
            if self.mode == "body":
                take = min(self.left, len(self.buf))
                self.buf, self.left = self.buf[take:], self.left - take
                if self.left:
                    break
                done += self._ended()
            elif self.mode == "size":
                i = self.buf.find(b"\r\n")
                if i < 0:
                    break
                size = int(self.buf[:i].split(b";")[0], 16)
                self.buf = self.buf[i + 2 :]
                self.mode, self.left = ("trailer", 0) if size == 0 else ("chunk", size + 2)
            elif self.mode == "chunk":
                take = min(self.left, len(self.buf))
                self.buf, self.left = self.buf[take:], self.left - take
                if self.left:
                    break
                self.mode = "size"
            elif self.mode == "trailer":
                i = self.buf.find(b"\r\n")
                if i < 0:
                    break
                self.buf = self.buf[i + 2 :]
                if i == 0:
                    done += self._ended()
        return done

    def _ended(self) -> int:
        self.mode, self.busy = "head", False
        return 1


def main(argv: list[str] | None = None) -> None:
    """Run a proxy in the foreground; print its URL on the first line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", help="the server's URL, http://host:port")
    parser.add_argument("--latency", type=float, default=0.0, help="added round trip, seconds")
    args = parser.parse_args(argv)
    proxy = Proxy(args.target, latency=args.latency)
    print(proxy.start(), flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        sys.stdin.read()  # until the parent closes our stdin (or ends)
    proxy.stop()


if __name__ == "__main__":
    main()
