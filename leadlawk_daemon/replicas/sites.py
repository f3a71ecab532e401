"""The websites replica: an HTTP forward proxy on loopback serving every ``*.example`` website.

The daemon reaches it exactly as it would reach a corporate proxy (``sites.proxy``): plain
``http://`` requests in absolute form (``GET http://acme.example/ HTTP/1.1``), and ``https://``
through ``CONNECT acme.example:443``, after which the replica speaks TLS as the site would. Each
run makes its own certificate authority (``ca_path``; the daemon trusts it with
``sites.ca_file``, as one trusts a private CA) and signs a certificate per host when the host is
first asked for; sites meant to have a broken certificate get a self-signed one or one for
another name. Certificates are made with the ``openssl`` command (no Python crypto dependency).

Site content comes from :mod:`sites_content` (host name + seed). Hosts outside ``.example``, and
the generated "DNS failure" / "connection refused" sites, get what a real proxy answers: a 502
to a CONNECT, or a 502 page to a plain request.

Routes on the replica itself (origin-form requests): ``GET /_answers?site=HOST`` (ground truth),
``GET|POST /_faults``, ``GET /_stats``, ``POST /_stats/reset``, ``GET /_ca`` (the CA, PEM).

Faults (``POST /_faults``; ``{}`` clears): ``latency_ms`` (every site answer this late),
``server_error`` (next N or ``true``: 503), ``hang`` (never answer), ``redirect_loop`` (302s in a
circle), ``endless_body`` (a 200 whose body never ends), ``unreachable`` (the proxy's 502), and
``hosts`` (a list of site hosts the faults apply to; absent: every site). Body faults spare
``/robots.txt``.

Hostile mode (:mod:`sites_hostile`): ``hostile`` (a share from 0 to 1) makes that share of the
sites hostile, chosen from host + seed; ``chain_delay_ms`` (default 2000) is how late each answer
of a redirect chain comes. Some hostile sites redirect to loopback or to the cloud metadata
address. As a proxy the replica never connects to such an address: it counts each request for
one in ``/_stats`` (``reached_forbidden``) and answers 502, except that a loopback request for the
port of its own *counting listener* (``listener_url``, a stand-in for a daemon's API on this
machine) is relayed there, and counted there (``listener_requests``) as is anything that reaches
the listener directly. After a safe daemon's job both counts are 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import ssl
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from leadlawk_daemon.replicas.faults import Fault, FaultSettingError, FaultSwitchboard, counted, milliseconds
from leadlawk_daemon.replicas.foreground import serve_in_foreground
from leadlawk_daemon.replicas.sites_content import (
    Response,
    SiteProfile,
    answers,
    endless_stream,
    profile,
    render,
)
from leadlawk_daemon.replicas.sites_hostile import forbidden_target, hostile_answers, hostile_shape, render_hostile

__all__ = ["FAULTS", "SitesReplica", "run_sites_replica", "serve_sites_replica"]

_MAX_HEAD = 64 * 1024
_HANG_LIMIT = 600.0
_REASONS = {200: "OK", 301: "Moved Permanently", 302: "Found", 400: "Bad Request", 403: "Forbidden",
            404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable"}


def _share(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1:
        return float(value) or None
    raise ValueError(f"expected a share of the sites from 0 to 1, got {value!r}")


def _hosts(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, list) and all(isinstance(h, str) and h for h in value):
        return tuple(sorted({h.lower().removeprefix("www.") for h in value})) or None
    raise ValueError(f"expected a list of host names, got {value!r}")


FAULTS = (
    Fault("latency_ms", "N", "every site answer this many milliseconds late", milliseconds),
    Fault("server_error", "true or count", "answer 503", counted),
    Fault("hang", "true or count", "never answer (the connection is held open)", counted),
    Fault("redirect_loop", "true or count", "answer with redirects that lead back to each other", counted),
    Fault("endless_body", "true or count", "answer 200 with an HTML body that never ends", counted),
    Fault("unreachable", "true or count", "the proxy answers 502: the site's host cannot be reached", counted),
    Fault("hosts", "[host, ...]", "the sites the faults apply to (default: all)", _hosts),
    Fault("hostile", "0..1", "this share of the sites is hostile (chosen from host + seed; see /_answers)", _share),
    Fault("chain_delay_ms", "N", "how late each answer of a hostile redirect chain comes (default 2000)",
          milliseconds),
)
_CHAIN_DELAY_MS = 2000
_LISTENER_ANSWER = b'{"jobs": [{"id": "job-of-the-daemon-under-attack", "status": "running"}]}'



class _Request:
    __slots__ = ("body", "headers", "method", "target")

    def __init__(self, method: str, target: str, headers: dict[str, str], body: bytes) -> None:
        self.method, self.target, self.headers, self.body = method, target, headers, body


async def _read_request(reader: asyncio.StreamReader) -> _Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    body = b""
    length = headers.get("content-length", "0")
    if length.isdigit() and 0 < int(length) <= _MAX_HEAD:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            body = await reader.readexactly(int(length))
    return _Request(parts[0].upper(), parts[1], headers, body)


async def _send(writer: asyncio.StreamWriter, response: Response) -> None:
    if response.delay:
        await asyncio.sleep(response.delay)
    lines = [f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Unknown')}"]
    lines += [f"{name}: {value}" for name, value in response.headers]
    if response.stream is None:
        lines.append(f"Content-Length: {len(response.body)}")
    lines.append("Connection: close")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    if response.stream is None:
        writer.write(response.body)
        await writer.drain()
        return
    for chunk in response.stream:  # drained chunk by chunk: a reader that stops stops us
        writer.write(chunk)
        await writer.drain()
        if response.pace:
            if writer.is_closing():
                return
            await asyncio.sleep(response.pace)


def _bad_gateway() -> Response:
    return Response(502, [("Content-Type", "text/html")], b"<h1>502 Bad Gateway</h1>")


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()


def _json(status: int, data: Any) -> Response:
    return Response(status, [("Content-Type", "application/json")], json.dumps(data).encode())


class _Certificates:
    """A CA made per run, and a certificate per host signed on first use (``openssl`` command)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.ca_path = directory / "ca.pem"
        self._contexts: dict[tuple[str, str], ssl.SSLContext] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._slots = asyncio.Semaphore(4)

    async def _openssl(self, *args: str) -> None:
        async with self._slots:
            process = await asyncio.create_subprocess_exec(
                "openssl", *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, cwd=self.dir
            )
            _, err = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"openssl {args[0]} failed: {err.decode(errors='replace').strip()[:300]}")

    async def start(self) -> None:
        if shutil.which("openssl") is None:
            raise RuntimeError("the sites replica needs the openssl command to make its certificates")
        await self._openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "key.pem")
        await self._openssl("req", "-x509", "-new", "-key", "key.pem", "-out", "ca.pem", "-days", "30",
                            "-subj", "/CN=LeadLawk sites replica CA", "-addext", "basicConstraints=critical,CA:TRUE",
                            "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    async def context(self, host: str, kind: str) -> ssl.SSLContext:
        """A server context for ``host``: ``valid``, ``self-signed``, or ``mismatch`` (another name's)."""
        name = "hosting-default.example" if kind == "mismatch" else host
        key = (name, "self-signed" if kind == "self-signed" else "ca")
        ready = self._contexts.get(key)
        if ready is not None:
            return ready
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            ready = self._contexts.get(key)
            if ready is not None:
                return ready
            cert = f"{key[1]}-{name}.pem"
            args = ["req", "-x509", "-new", "-key", "key.pem", "-out", cert, "-days", "30", "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName=DNS:{name},DNS:www.{name}", "-addext", "basicConstraints=CA:FALSE",
                    "-addext", "extendedKeyUsage=serverAuth"]
            if key[1] == "ca":
                args += ["-CA", "ca.pem", "-CAkey", "key.pem"]
            await self._openssl(*args)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.dir / cert, self.dir / "key.pem")
            self._contexts[key] = context
            self._locks.pop(key, None)
            return context


class SitesReplica:
    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.faults = FaultSwitchboard(FAULTS)
        self.requests: Counter[str] = Counter()  # site host → requests seen (robots.txt included)
        self.peak: Counter[str] = Counter()  # site host → most requests in flight at once
        self.reached_forbidden: Counter[str] = Counter()  # forbidden target host → requests asked for it
        self.listener_requests = 0  # requests the counting listener received, relayed or direct
        self._active: Counter[str] = Counter()
        self._tmp = tempfile.TemporaryDirectory(prefix="leadlawk-sites-")
        self.certs = _Certificates(Path(self._tmp.name))
        self._server: asyncio.Server | None = None
        self._listener: asyncio.Server | None = None
        self.listener_port = 0
        self._connections: set[asyncio.Task[None]] = set()
        self._closing = False
        self.base_url = ""

    @property
    def ca_path(self) -> Path:
        return self.certs.ca_path

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        await self.certs.start()
        self._listener = await asyncio.start_server(self._listened, "127.0.0.1", 0, limit=_MAX_HEAD)
        self.listener_port = self._listener.sockets[0].getsockname()[1]
        self._server = await asyncio.start_server(self._connection, host, port, limit=_MAX_HEAD)
        bound = self._server.sockets[0].getsockname()[1]
        self.base_url = f"http://{host}:{bound}"
        return self.base_url

    @property
    def listener_url(self) -> str:
        return f"http://127.0.0.1:{self.listener_port}"

    async def close(self) -> None:
        self._closing = True
        for server in (self._server, self._listener):
            if server is not None:
                server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        for server in (self._server, self._listener):
            if server is not None:
                await server.wait_closed()
        self._server = self._listener = None
        self._tmp.cleanup()

    def profile(self, host: str) -> SiteProfile:
        return profile(host, self.seed)

    def hostile(self, host: str) -> str | None:
        """The hostile shape of ``host`` under the faults set now (None: an ordinary site)."""
        return hostile_shape(host, self.seed, self.faults.get("hostile") or 0.0)

    def answers(self, host: str) -> dict[str, Any]:
        ordinary = answers(self.profile(host))
        shape = self.hostile(host)
        if shape is not None:
            return hostile_answers(host, shape, ordinary)
        return {**ordinary, "hostile": None, "expect": {"status": ordinary["status"], "reason": ordinary["reason"]}}

    def stats(self) -> dict[str, Any]:
        return {"requests": dict(self.requests), "peak_in_flight": dict(self.peak),
                "reached_forbidden": sum(self.reached_forbidden.values()),
                "forbidden_targets": dict(self.reached_forbidden), "listener_requests": self.listener_requests}

    def reset_stats(self) -> None:
        self.requests.clear()
        self.peak.clear()
        self.reached_forbidden.clear()
        self.listener_requests = 0

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._owned(self._serve, reader, writer)

    async def _listened(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._owned(self._listen, reader, writer)

    async def _owned(
        self, serve: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await serve(reader, writer)
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, OSError):
            pass  # the client went away, or refused our certificate: both are its business
        except asyncio.CancelledError:
            # asyncio's stream server logs a handler that ends cancelled as an error; when we are
            # closing, the cancellation is ours and the handler's end is the expected one.
            if not self._closing:
                raise
        finally:
            self._connections.discard(task)
            await _close(writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await _read_request(reader)
        if request is None:
            return
        if request.method == "CONNECT":
            await self._tunnel(request, reader, writer)
            return
        if request.target.startswith("/"):
            await _send(writer, self._control(request))
            return
        try:
            parts = urlsplit(request.target)
        except ValueError:
            await _send(writer, Response(400, [], b"bad request target"))
            return
        host = (parts.hostname or "").lower()
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        if forbidden_target(host) is not None:
            await self._forbidden(request, host, parts.port, path, writer)
            return
        await self._site(reader, writer, "http", host, path)

    async def _forbidden(
        self, request: _Request, host: str, port: int | None, path: str, writer: asyncio.StreamWriter
    ) -> None:
        """A request for an address no proxy should reach: counted, then refused, or relayed to
        our own counting listener when it names that port on loopback (the daemon attacking itself)."""
        self.reached_forbidden[host] += 1
        if forbidden_target(host) != "127.0.0.1" or port != self.listener_port:
            await _send(writer, _bad_gateway())
            return
        relay_reader, relay_writer = await asyncio.open_connection("127.0.0.1", self.listener_port)
        try:
            relay_writer.write(f"{request.method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                               "Connection: close\r\n\r\n".encode("latin-1"))
            await relay_writer.drain()
            answer = bytearray()  # the listener's answer is small, then it closes
            while len(answer) < _MAX_HEAD and (chunk := await relay_reader.read(_MAX_HEAD - len(answer))):
                answer += chunk
            writer.write(answer)
            await writer.drain()
        finally:
            await _close(relay_writer)

    async def _listen(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The counting listener: it plays a daemon's API on loopback, and counts who reached it."""
        request = await _read_request(reader)
        if request is None:
            return
        self.listener_requests += 1
        await _send(writer, Response(200, [("Content-Type", "application/json")], _LISTENER_ANSWER))

    async def _tunnel(self, request: _Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, _, port = request.target.rpartition(":")
        host = host.lower().strip("[]")
        if forbidden_target(host) is not None:
            self.reached_forbidden[host] += 1  # never tunnelled anywhere, the listener included
        site = self.profile(host) if host.endswith(".example") else None
        # Hostile sites are plain http: a CONNECT to one fails as to a host that serves no https.
        if site is None or self.hostile(host) is not None or port != "443" or site.kind in ("dns", "refused") \
                or not site.serves_https or self._fault(host, "unreachable"):
            await _send(writer, Response(502, [("Content-Type", "text/plain")], b"cannot connect to host"))
            return
        context = await self.certs.context(host, site.cert)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await writer.start_tls(context)
        inner = await _read_request(reader)
        if inner is None:
            return
        path = inner.target if inner.target.startswith("/") else (urlsplit(inner.target).path or "/")
        await self._site(reader, writer, "https", host, path)

    def _targeted(self, host: str) -> bool:
        targets = self.faults.get("hosts")
        return targets is None or host.removeprefix("www.") in targets

    def _fault(self, host: str, name: str) -> bool:
        return self._targeted(host) and self.faults.take(name)

    async def _site(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, scheme: str, host: str, path: str
    ) -> None:
        if not host.endswith(".example"):
            await _send(writer, _bad_gateway())
            return
        site = self.profile(host)
        key = site.host
        shape = self.hostile(host)
        if shape is not None:
            await self._hostile(writer, key, shape, path)
            return
        self.requests[key] += 1
        self._active[key] += 1
        self.peak[key] = max(self.peak[key], self._active[key])
        try:
            if site.kind in ("dns", "refused") or self._fault(host, "unreachable"):
                await _send(writer, _bad_gateway())
                return
            latency = self.faults.get("latency_ms")
            if latency and self._targeted(host):
                await asyncio.sleep(latency / 1000)
            if site.slow_s:
                await asyncio.sleep(site.slow_s)
            response = self._faulted(host, path) or render(site, scheme, host, path, self.seed)
            if response.hang:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_HANG_LIMIT):
                        await reader.read()  # until the client gives up and closes
                return
            await _send(writer, response)
        finally:
            self._active[key] -= 1
            if self._active[key] <= 0:
                del self._active[key]

    async def _hostile(self, writer: asyncio.StreamWriter, key: str, shape: str, path: str) -> None:
        self.requests[key] += 1
        delay = self.faults.get("chain_delay_ms")
        response = render_hostile(shape, key, path, listener_port=self.listener_port,
                                  chain_delay=(delay if delay is not None else _CHAIN_DELAY_MS) / 1000)
        await _send(writer, response)

    def _faulted(self, host: str, path: str) -> Response | None:
        if self._fault(host, "hang"):
            return Response(200, [], hang=True)
        if self._fault(host, "server_error"):
            return Response(503, [("Content-Type", "text/html")], b"<h1>Service Unavailable</h1>")
        if path.startswith("/robots.txt"):
            return None
        if self._fault(host, "redirect_loop"):
            return Response(302, [("Location", "/loop-b" if path != "/loop-b" else "/loop-a")])
        if self._fault(host, "endless_body"):
            return Response(200, [("Content-Type", "text/html")], stream=endless_stream())
        return None

    def _control(self, request: _Request) -> Response:
        parts = urlsplit(request.target)
        route = (request.method, parts.path)
        if route == ("GET", "/_answers"):
            sites = parse_qs(parts.query).get("site", [])
            if not sites:
                return _json(400, {"error": "name the site: /_answers?site=HOST (repeatable)"})
            found = [self.answers((urlsplit(s).hostname or s) if "://" in s else s) for s in sites]
            return _json(200, {"answers": found})
        if route == ("GET", "/_faults"):
            return _json(200, self.faults.describe())
        if route == ("POST", "/_faults"):
            try:
                self.faults.replace(json.loads(request.body or b"null"))
            except ValueError as exc:
                message = str(exc) if isinstance(exc, FaultSettingError) else f"the body is not valid JSON: {exc}"
                return _json(400, {"error": message})
            return _json(200, self.faults.describe())
        if route == ("GET", "/_stats"):
            return _json(200, self.stats())
        if route == ("POST", "/_stats/reset"):
            self.reset_stats()
            return _json(200, self.stats())
        if route == ("GET", "/_ca"):
            return Response(200, [("Content-Type", "application/x-pem-file")], self.ca_path.read_bytes())
        if route == ("GET", "/"):
            return _json(200, {"replica": "sites", "use_as": "sites.proxy", "ca_file": str(self.ca_path),
                               "listener_url": self.listener_url})
        return _json(404, {"error": f"no route {request.method} {parts.path}"})


@asynccontextmanager
async def serve_sites_replica(host: str = "127.0.0.1", port: int = 0, seed: int = 0) -> AsyncIterator[SitesReplica]:
    """Run the replica on ``host:port`` (0: any free port); ``base_url`` is its proxy URL."""
    replica = SitesReplica(seed)
    try:
        await replica.start(host, port)
        yield replica
    finally:
        await replica.close()


async def run_sites_replica(host: str = "127.0.0.1", port: int = 8093, seed: int = 0) -> None:
    """``leadlawk replica sites``: serve until cancelled, printing the proxy URL and the CA file."""
    # SIGTERM (a bench or a supervisor ending us) unwinds like Ctrl-C: the per-run CA is removed.
    await serve_in_foreground(
        serve_sites_replica(host, port, seed),
        lambda replica: (replica.base_url, f"sites.proxy: {replica.base_url}  sites.ca_file: {replica.ca_path}"),
    )
