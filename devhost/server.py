"""The local Functions host: HTTP triggers over ThreadingHTTPServer, plus timers and queues."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import importlib
import importlib.util
import inspect
import json
import logging
import os
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func
from azure.functions.queue import QueueMessage

from devhost.ncrontab import NCrontab
from devhost.queues import QueuePoller
from devhost.routes import RouteTable
from devhost.settings import HostConfig, resolve_connection
from devhost.timers import TimerRunner

log = logging.getLogger("devhost")
http_log = logging.getLogger("devhost.http")

DEFAULT_PORT = 7071
# The Functions host's default request body limit; FUNCTIONS_REQUEST_BODY_SIZE_LIMIT moves it.
DEFAULT_MAX_BODY_BYTES = 104_857_600
_ADMIN_INVOKE = re.compile(r"^/admin/functions/([^/]+)/?$", re.IGNORECASE)
_NO_BODY_STATUSES = {204, 304}


def load_app(target: str = "function_app", attribute: str = "app") -> func.FunctionApp:
    """Import ``module``, ``module:attr`` or a ``path/to/file.py`` and return its FunctionApp."""
    if ":" in target and not Path(target).exists():
        target, attribute = target.rsplit(":", 1)
    if target.endswith(".py") or Path(target).is_file():
        path = Path(target).resolve()
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    app = getattr(module, attribute, None)
    if not isinstance(app, func.FunctionApp):
        raise TypeError(f"{target}.{attribute} is not an azure.functions.FunctionApp")
    return app


def _plain(value: Any) -> Any:
    """Enum members (HttpMethod, AuthLevel...) to their plain values."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return getattr(value, "value", value)


@dataclass(frozen=True)
class FunctionInfo:
    """What the host needs to know about one function of the app."""

    name: str
    trigger: dict[str, Any]
    user_function: Callable[..., Any]
    bindings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def trigger_type(self) -> str:
        return str(self.trigger.get("type"))

    @property
    def arg_name(self) -> str:
        return str(self.trigger["name"])


def describe_functions(app: func.FunctionApp) -> list[FunctionInfo]:
    infos = []
    for function in app.get_functions():
        trigger = {k: _plain(v) for k, v in function.get_trigger().get_dict_repr().items()}
        bindings = [
            {k: _plain(v) for k, v in b.get_dict_repr().items()} for b in function.get_bindings()
        ]
        infos.append(
            FunctionInfo(
                function.get_function_name(), trigger, function.get_user_function(), bindings
            )
        )
    return infos


class _Context(func.Context):
    """The ``context`` argument functions may declare."""

    def __init__(self, function_name: str) -> None:
        self._invocation_id = str(uuid.uuid4())
        self._function_name = function_name
        self._local = threading.local()

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> Any:
        return self._local

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return os.getcwd()

    @property
    def trace_context(self) -> Any:
        return None

    @property
    def retry_context(self) -> Any:
        return None


class Invoker:
    """Calls user functions: sync ones on the calling thread, async ones on one shared loop.

    One loop for all coroutines is what the Python worker does, so blocking inside an async
    handler stalls other async handlers here as it would in Azure.
    """

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="devhost-asyncio", daemon=True
        )
        self._thread.start()

    def call(self, info: FunctionInfo, trigger_value: Any) -> Any:
        kwargs: dict[str, Any] = {info.arg_name: trigger_value}
        if "context" in inspect.signature(info.user_function).parameters:
            kwargs.setdefault("context", _Context(info.name))
        result = info.user_function(**kwargs)
        if inspect.isawaitable(result):
            result = asyncio.run_coroutine_threadsafe(_await(result), self._loop).result()
        return result

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


def _await(awaitable: Any) -> Coroutine[Any, Any, Any]:
    async def wrapper() -> Any:
        return await awaitable

    return wrapper()


def _response_parts(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body of what an HTTP function returned (HttpResponse or str)."""
    if isinstance(result, str | bytes):
        result = func.HttpResponse(result)
    if not isinstance(result, func.HttpResponse):
        raise TypeError(f"HTTP function returned {type(result).__name__}, not HttpResponse")
    headers = [
        (k, v)
        for k, v in result.headers.items()
        if k.lower() not in ("content-length", "transfer-encoding", "connection")
    ]
    if not any(k.lower() == "content-type" for k, _ in headers):
        ct = result.mimetype
        headers.append(
            ("Content-Type", f"{ct}; charset={result.charset}" if ct.startswith("text/") else ct)
        )
    return result.status_code, headers, result.get_body() or b""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 drops connections of a burst of clients before
    # they are accepted; a real server's is in the hundreds (the kernel caps it).
    request_queue_size = 512

    def __init__(self, address: tuple[str, int], owner: LocalHost) -> None:
        self.owner = owner
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def close_connections(self) -> None:
        """Drop keep-alive connections too; ``shutdown()`` only stops accepting new ones."""
        with self.connections_lock:
            for connection in list(self.connections):
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)


class _BadRequest(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; Nagle + delayed ACK would add ~40 ms.
    disable_nagle_algorithm = True
    server_version = "devhost"
    timeout = 120  # idle keep-alive connections are dropped after this
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, fmt: str, *args: Any) -> None:
        http_log.debug(fmt, *args)

    def handle_expect_100(self) -> bool:
        # Refuse oversized uploads before the client sends them.
        length = self.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > self.server.owner.max_body_bytes:
            self._send(413, [], b"", close=True)
            self._log(413, time.perf_counter())
            return False
        return super().handle_expect_100()

    def _dispatch(self) -> None:
        started = time.perf_counter()
        try:
            body = self._read_body()
            status, headers, payload = self.server.owner.handle_http(
                self.command, self.path, self._headers(), body
            )
            self._send(status, headers, payload)
            # A function's answer carries X-Request-ID and the app logged it already: one
            # line per request, the app's. devhost logs what no function answered.
            app_logged = any(name.lower() == "x-request-id" for name, _ in headers)
        except _BadRequest as bad:
            status, app_logged = bad.status, False
            self._send(status, [], b"", close=True)
        except (ConnectionError, TimeoutError):
            self.close_connection = True
            status, app_logged = 499, False  # client went away; nothing left to answer
        self._log(status, started, level=logging.DEBUG if app_logged else logging.INFO)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    def __getattr__(self, name: str) -> Any:
        # Any other method (TRACE, QUERY...) gets the route table's 405 as on Azure,
        # not http.server's 501.
        if name.startswith("do_") and name[3:].isalpha() and name[3:].isupper():
            return self._dispatch
        raise AttributeError(name)

    def _headers(self) -> dict[str, str]:
        merged: dict[str, str] = {}
        for key, value in self.headers.items():
            merged[key] = f"{merged[key]}, {value}" if key in merged else value
        # As Azure's front end does: the peer's address is appended to X-Forwarded-For.
        forwarded = next((k for k in merged if k.lower() == "x-forwarded-for"), None)
        peer = str(self.client_address[0])
        if forwarded:
            merged[forwarded] = f"{merged[forwarded]}, {peer}"
        else:
            merged["X-Forwarded-For"] = peer
        return merged

    def _read_body(self) -> bytes:
        cap = self.server.owner.max_body_bytes
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked(cap)
        raw_length = self.headers.get("Content-Length")
        if raw_length is None:
            return b""
        if not raw_length.strip().isdigit():
            raise _BadRequest(400)
        length = int(raw_length)
        if length > cap:
            raise _BadRequest(413)
        body = self.rfile.read(length)
        if len(body) < length:
            raise ConnectionError("request body truncated")
        return body

    def _read_chunked(self, cap: int) -> bytes:
        chunks, total = [], 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BadRequest(400) from None
            if size == 0:
                while self.rfile.readline(65536).strip():  # trailers
                    pass
                return b"".join(chunks)
            total += size
            if total > cap:
                raise _BadRequest(413)
            chunk = self.rfile.read(size)
            if len(chunk) < size:
                raise ConnectionError("request body truncated")
            chunks.append(chunk)
            self.rfile.readline(8)

    def _send(
        self, status: int, headers: list[tuple[str, str]], body: bytes, close: bool = False
    ) -> None:
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        if status not in _NO_BODY_STATUSES and status >= 200:
            self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD" and status not in _NO_BODY_STATUSES:
            self.wfile.write(body)
        self.wfile.flush()

    def _log(self, status: int, started: float, level: int = logging.INFO) -> None:
        elapsed = (time.perf_counter() - started) * 1000
        path = urlsplit(self.path).path
        http_log.log(
            level,
            "%s %s %d %.1fms",
            self.command,
            path,
            status,
            elapsed,
            extra={"method": self.command, "path": path, "status": status, "duration_ms": elapsed},
        )


class LocalHost:
    """Runs a FunctionApp locally: HTTP routes, timer schedules, queue pollers, admin invoke.

    ``LocalHost(app, port=0).start()`` serves on a free port in background threads;
    ``.url`` is the base URL and ``.stop()`` (or leaving the ``with`` block) shuts everything
    down. ``timers=False`` / ``queues=False`` disable the schedules / pollers while keeping
    ``POST /admin/functions/{name}`` working for those functions; ``http=False`` runs only
    the timers and pollers (a worker process, as another instance would be in Azure).
    """

    def __init__(
        self,
        app: func.FunctionApp | str = "function_app",
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        config: HostConfig | None = None,
        max_body_bytes: int | None = None,
        timers: bool = True,
        queues: bool = True,
        http: bool = True,
    ) -> None:
        self.app = load_app(app) if isinstance(app, str) else app
        self._enable_http = http
        self.host = host
        self.port = int(os.environ.get("PORT", DEFAULT_PORT)) if port is None else port
        self.config = config or HostConfig()
        self.max_body_bytes = max_body_bytes or body_size_limit(os.environ)
        # Required on POST /admin/functions/{name} when set (x-functions-key), as in Azure.
        self.master_key = os.environ.get("DEVHOST_MASTER_KEY") or None
        self.functions = describe_functions(self.app)
        self._enable_timers = timers
        self._enable_queues = queues
        self.routes: RouteTable[FunctionInfo] = RouteTable(self.config.route_prefix)
        self.timers: dict[str, TimerRunner] = {}
        self.disabled: dict[str, str] = {}  # function name -> why the host disabled it
        self.pollers: dict[str, QueuePoller] = {}
        self._invoker: Invoker | None = None
        self._server: _Server | None = None
        self._server_thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _prepare(self) -> None:
        """Validate every trigger before anything starts, so bad config fails fast and clean."""
        self.routes = RouteTable(self.config.route_prefix)
        self.timers, self.pollers = {}, {}
        self.disabled: dict[str, str] = {}
        for info in self.functions:
            kind = info.trigger_type
            if kind == "httpTrigger":
                self.routes.add(
                    info.trigger.get("route") or info.name, info.trigger.get("methods"), info
                )
            elif kind == "timerTrigger":
                self.timers[info.name] = TimerRunner(
                    info.name,
                    self._schedule(info),
                    self._runner(info),
                    run_on_startup=bool(info.trigger.get("runOnStartup")),
                )
            elif kind == "queueTrigger" and self._enable_queues:
                self.pollers[info.name] = QueuePoller(
                    info.name,
                    str(info.trigger["queueName"]),
                    resolve_connection(info.trigger.get("connection")),
                    self._runner(info),
                    self.config.queues,
                )
            elif kind != "queueTrigger":
                log.warning("%s: %s triggers are not emulated by devhost; skipped", info.name, kind)
            extra = [
                b
                for b in info.bindings
                if b.get("name") not in (info.arg_name, "$return") and b.get("type") != "http"
            ]
            for binding in extra:
                log.warning(
                    "%s: %s binding %r is not emulated; the function will not receive it",
                    info.name,
                    binding.get("type"),
                    binding.get("name"),
                )

    def _schedule(self, info: FunctionInfo) -> NCrontab | None:
        """Parsed schedule, or None when it is unusable (a missing %SETTING% or a bad
        expression): like the host, that function alone is disabled and the host runs on."""
        try:
            return NCrontab.parse(str(info.trigger["schedule"]), os.environ)
        except ValueError as exc:
            if self._enable_timers:
                log.error("%s: timer disabled: %s", info.name, exc)
                self.disabled[info.name] = str(exc)
            else:
                log.info("%s: schedule not usable, runs only via the admin endpoint", info.name)
            return None

    def _runner(self, info: FunctionInfo) -> Callable[[Any], Any]:
        def run(trigger_value: Any) -> Any:
            assert self._invoker is not None, "host not started"
            return self._invoker.call(info, trigger_value)

        return run

    def start(self) -> Self:
        """Bind the port and start serving, timers and pollers in background threads."""
        self._prepare()
        self._invoker = Invoker()
        if self._enable_http:
            self._server = _Server((self.host, self.port), self)
            self.port = self._server.server_address[1]
            self._server_thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.2},
                name="devhost-http",
                daemon=True,
            )
            self._server_thread.start()
        if self._enable_timers:
            for runner in self.timers.values():
                if runner.schedule is not None:
                    runner.start()
        for poller in self.pollers.values():
            poller.start()
        return self

    def stop(self) -> None:
        """Stop accepting work; running invocations are not interrupted (daemon threads)."""
        for poller in self.pollers.values():
            poller.stop()
        for runner in self.timers.values():
            runner.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.close_connections()
            self._server.server_close()
            self._server = None
        if self._server_thread is not None:
            self._server_thread.join(5)
            self._server_thread = None
        if self._invoker is not None:
            self._invoker.close()
            self._invoker = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def find_function(self, name: str) -> FunctionInfo | None:
        """Function names are case-insensitive in Azure Functions."""
        return next((f for f in self.functions if f.name.lower() == name.lower()), None)

    def invoke(self, name: str, payload: str | None = None) -> threading.Thread:
        """Run a timer or queue function once in the background (like Core Tools' admin API)."""
        info = self.find_function(name)
        if info is None:
            raise KeyError(name)
        if info.trigger_type == "timerTrigger":
            runner = self.timers[info.name]
            target: Callable[[], Any] = runner.trigger
        elif info.trigger_type == "queueTrigger":
            message = _admin_queue_message(payload)
            run = self._runner(info)

            def target() -> None:
                try:
                    run(message)
                except Exception:
                    log.exception("%s: failed on admin-invoked message", info.name)
        else:
            raise ValueError(f"{info.name} is a {info.trigger_type}; call its route instead")
        thread = threading.Thread(target=target, name=f"invoke-{info.name}", daemon=True)
        thread.start()
        return thread

    def handle_http(
        self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Route one request and return (status, headers, body); never raises for app errors."""
        split = urlsplit(raw_path)
        admin = _ADMIN_INVOKE.match(split.path)
        if admin and method.upper() == "POST":
            if not self._admin_key_ok(admin.group(1), headers):
                return 401, [], b""
            return self._admin_invoke(admin.group(1), body)
        match = self.routes.match(method, split.path)
        if match.route is None:
            # The host answers 404 to a known route with a method it does not declare.
            return 404, [], b""
        info = match.route.target
        host_header = next((v for k, v in headers.items() if k.lower() == "host"), None)
        request = func.HttpRequest(
            method.upper(),
            f"http://{host_header or f'{self.host}:{self.port}'}{raw_path}",
            headers=headers,
            params=_query_params(split.query),
            route_params=dict(match.params),
            body=body,
        )
        try:
            return _response_parts(self._runner(info)(request))
        except Exception:
            log.exception("%s: unhandled exception; answering 500", info.name)
            return 500, [], b""

    def _admin_key_ok(self, name: str, headers: Mapping[str, str]) -> bool:
        """As the real host: with a master key set, admin calls must carry it. Logged
        either way (never the key), the local stand-in for the host's audit trail."""
        presented = next((v for k, v in headers.items() if k.lower() == "x-functions-key"), "")
        fine = not self.master_key or hmac.compare_digest(
            presented.encode(), self.master_key.encode()
        )
        peer = next((v for k, v in headers.items() if k.lower() == "x-forwarded-for"), "")
        safe_name = name[:80].encode("unicode_escape").decode()
        if fine:
            log.info("admin invoke %s accepted (from %s)", safe_name, peer or "unknown")
        else:
            log.warning(
                "admin invoke refused: %s without the master key (from %s)",
                safe_name,
                peer or "unknown",
            )
        return fine

    def _admin_invoke(self, name: str, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        try:
            payload = json.loads(body) if body.strip() else {}
            value = payload.get("input") if isinstance(payload, dict) else None
            self.invoke(name, None if value is None else str(value))
        except KeyError:
            return 404, [], b""
        except (ValueError, json.JSONDecodeError) as exc:
            body = json.dumps({"error": str(exc)}).encode()
            return 400, [("Content-Type", "application/json")], body
        return 202, [], b""

    def describe(self) -> str:
        """Function listing in the style of ``func start``."""
        lines = ["Functions:", ""]
        for route in self.routes.routes:
            methods = ",".join(sorted(route.methods)) if route.methods else "ALL"
            lines.append(f"\t{route.target.name}: [{methods}] {self.url}/{route.template.text}")
        for info in self.functions:
            if info.trigger_type == "timerTrigger":
                lines.append(f"\t{info.name}: timerTrigger ({info.trigger.get('schedule')})")
            elif info.trigger_type == "queueTrigger":
                lines.append(f"\t{info.name}: queueTrigger ({info.trigger.get('queueName')})")
        return "\n".join(lines)


def body_size_limit(environ: Mapping[str, str]) -> int:
    """FUNCTIONS_REQUEST_BODY_SIZE_LIMIT (bytes) as the host reads it, else its default."""
    raw = environ.get("FUNCTIONS_REQUEST_BODY_SIZE_LIMIT", "").strip()
    if not raw:
        return DEFAULT_MAX_BODY_BYTES
    if not raw.isdigit() or int(raw) <= 0:
        raise ValueError(f"FUNCTIONS_REQUEST_BODY_SIZE_LIMIT must be a positive integer: {raw!r}")
    return int(raw)


def _query_params(query: str) -> dict[str, str]:
    """Repeated keys are joined with commas, as the host's query collection does."""
    params: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        params[key] = f"{params[key]},{value}" if key in params else value
    return params


def _admin_queue_message(text: str | None) -> QueueMessage:
    now = datetime.now(UTC)
    return QueueMessage(
        id=str(uuid.uuid4()),
        body=(text or "").encode("utf-8"),
        dequeue_count=1,
        insertion_time=now,
        expiration_time=now + timedelta(days=7),
        time_next_visible=now,
        pop_receipt=None,
    )


__all__ = ["DEFAULT_PORT", "FunctionInfo", "Invoker", "LocalHost", "describe_functions", "load_app"]
