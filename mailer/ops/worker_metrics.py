"""A worker's own ``/metrics`` (``mailer worker --metrics-port`` or
``MAILER_WORKER_METRICS_PORT``), so that counters survive any number of machines: each
worker is scraped on its own, with or without an API process beside it.

The worker serves its process' counters and those of the child workers it starts
(``imports``, ``transactional``) through a prometheus-client multiprocess directory of its
own, made at start and removed at exit (a ``PROMETHEUS_MULTIPROC_DIR`` shared with an API
process is not used then: the API would report the worker's counts a second time). The
bearer token is ``MAILER_METRICS_TOKEN``; without one the worker serves only on a loopback
address. A tiny HTTP/1.1 server on the worker's event loop: one GET per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import shutil
import socket
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import structlog

from mailer import metrics_token
from mailer.config import Settings, get_settings
from mailer.ops import heartbeat

log = structlog.get_logger(__name__)

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
_READ_TIMEOUT = 10.0


class MetricsSetupError(Exception):
    pass


def authorized(header: str | None, token: str | None) -> bool:
    """Whether an ``Authorization`` header carries the metrics token (no token: all do)."""
    return not token or metrics_token.carries(header, token)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class MetricsEndpoint:
    host: str
    port: int
    token: str | None
    directory: str


def prepare(port_option: int | None) -> MetricsEndpoint | None:
    """Called by ``mailer worker`` before anything imports prometheus-client: the
    endpoint to serve (None: off), with the multiprocess directory this worker and its
    children count into. The children it starts inherit the directory and serve nothing."""
    settings = get_settings()
    port = settings.worker_metrics_port if port_option is None else port_option
    if port <= 0:
        return None
    host = settings.worker_metrics_host
    if not settings.metrics_token and not _loopback(host):
        raise MetricsSetupError(
            f"a worker's /metrics on {host} needs MAILER_METRICS_TOKEN (or set"
            " MAILER_WORKER_METRICS_HOST=127.0.0.1 to serve it on this machine only)"
        )
    if "mailer.metrics" in sys.modules:
        raise MetricsSetupError("prometheus metrics were set up before the worker's directory")
    directory = tempfile.mkdtemp(prefix="mailer-worker-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    os.environ["MAILER_WORKER_METRICS_PORT"] = "0"  # the child workers do not serve
    from prometheus_client import values

    values.ValueClass = values.get_value_class()  # the directory is read at import
    return MetricsEndpoint(host, port, settings.metrics_token, directory)


def _response(status: int, reason: str, body: bytes, content_type: bytes) -> bytes:
    return (
        b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
        % (status, reason.encode(), content_type, len(body))
    ) + body


def _error(status: int, reason: str, code: str, message: str) -> bytes:
    body = json.dumps({"error": {"code": code, "message": message, "details": []}}).encode()
    return _response(status, reason, body, b"application/json")


class MetricsServer:
    """``GET /metrics`` of this worker and its children, token-protected."""

    def __init__(self, endpoint: MetricsEndpoint) -> None:
        self.endpoint = endpoint
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(
            self._serve, self.endpoint.host, self.endpoint.port, reuse_address=True
        )
        log.info("worker_metrics_listening", host=self.endpoint.host, port=self.endpoint.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT)
            writer.write(await self._answer(head.decode("latin-1")))
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _answer(self, head: str) -> bytes:
        lines = head.split("\r\n")
        method, _, rest = lines[0].partition(" ")
        path = rest.partition(" ")[0].partition("?")[0]
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines[1:] if line)
        }
        if path != "/metrics":
            return _error(404, "Not Found", "not_found", "only /metrics is served here")
        if method != "GET":
            return _error(405, "Method Not Allowed", "method_not_allowed", "use GET")
        if not authorized(headers.get("authorization"), self.endpoint.token):
            return _error(
                401, "Unauthorized", "unauthorized", "send Authorization: Bearer <metrics token>"
            )
        from mailer.metrics import exposition

        body = await asyncio.to_thread(exposition, Path(self.endpoint.directory), [])
        return _response(200, "OK", body, CONTENT_TYPE)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


class WorkerPresence:
    """What a ``mailer worker`` process shows of itself: its heartbeat in Redis for the
    queues it works on (the API's ``mailer_workers_seen``) and, when asked, its /metrics."""

    def __init__(
        self, settings: Settings, queues: list[str], endpoint: MetricsEndpoint | None
    ) -> None:
        from redis.asyncio import Redis

        self.queues = queues
        self.endpoint = endpoint
        self.member = f"{socket.gethostname()}:{os.getpid()}"
        self.redis = Redis.from_url(settings.redis_url)
        self.server = MetricsServer(endpoint) if endpoint is not None else None
        self.beating: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.server is not None:
            await self.server.start()
        if self.queues:
            self.beating = asyncio.create_task(
                heartbeat.beat_forever(self.redis, self.queues, self.member)
            )

    async def close(self) -> None:
        if self.beating is not None:
            self.beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.beating
            await heartbeat.forget(self.redis, self.queues, self.member)
        await self.redis.aclose()
        if self.server is not None:
            await self.server.close()
        if self.endpoint is not None:
            shutil.rmtree(self.endpoint.directory, ignore_errors=True)
