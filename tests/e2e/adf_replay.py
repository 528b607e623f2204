"""Replays Data Factory pipeline JSON against a running host, request by request.

A small evaluator for the expression subset the pipelines in docs/adf use (string
literals, ``pipeline().parameters.x``, ``pipeline().RunId``, ``activity('A').output.x``,
``concat``, ``encodeUriComponent``, ``equals``), and an HTTP sender that puts on the wire
exactly the method, path, headers and body the activity defines (plus Host and
Content-Length, as any HTTP client does). Key Vault reads (MSI Web activities) are
answered from a dict instead of being sent.
"""

from __future__ import annotations

import http.client
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

_TOKEN = re.compile(r"\s*(?:('(?:[^']|'')*')|([A-Za-z_][A-Za-z0-9_]*)|(\S))")


@dataclass
class Context:
    parameters: dict[str, Any]
    outputs: dict[str, Any] = field(default_factory=dict)
    run_id: str = "run-1"


class _Parser:
    def __init__(self, text: str, ctx: Context) -> None:
        self.tokens = [m.groups() for m in _TOKEN.finditer(text) if any(m.groups())]
        self.i = 0
        self.ctx = ctx

    def peek(self) -> tuple[str | None, ...]:
        return self.tokens[self.i] if self.i < len(self.tokens) else (None, None, None)

    def take(self, symbol: str | None = None) -> tuple[str | None, ...]:
        tok = self.peek()
        if symbol is not None and tok[2] != symbol:
            raise ValueError(f"expected {symbol!r}, got {tok}")
        self.i += 1
        return tok

    def expr(self) -> Any:
        literal, name, _ = self.take()
        if literal is not None:
            value: Any = literal[1:-1].replace("''", "'")
        else:
            assert name is not None
            self.take("(")
            args = []
            while self.peek()[2] != ")":
                args.append(self.expr())
                if self.peek()[2] == ",":
                    self.take(",")
            self.take(")")
            value = self.call(name, args)
        while self.peek()[2] == ".":
            self.take(".")
            key = self.take()[1]
            value = value["RunId"] if key == "RunId" and value is self.ctx else value[key]
        return value

    def call(self, name: str, args: list[Any]) -> Any:
        if name == "pipeline":
            return {"parameters": self.ctx.parameters, "RunId": self.ctx.run_id}
        if name == "activity":
            return {"output": self.ctx.outputs[args[0]]}
        if name == "concat":
            return "".join(str(a) for a in args)
        if name == "encodeUriComponent":
            return quote(str(args[0]), safe="")
        if name == "equals":
            return args[0] == args[1]
        raise ValueError(f"unsupported function {name}")


def evaluate(value: Any, ctx: Context) -> Any:
    """An ADF property: a plain value, or {"value": "@...", "type": "Expression"}."""
    if isinstance(value, dict) and value.get("type") == "Expression":
        value = value["value"]
    if isinstance(value, str) and value.startswith("@") and not value.startswith("@@"):
        parser = _Parser(value[1:], ctx)
        result = parser.expr()
        if parser.i != len(parser.tokens):
            raise ValueError(f"trailing tokens in {value!r}")
        return result
    return value


@dataclass
class Sent:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes | None
    status: int
    response_headers: dict[str, str]
    response_body: bytes

    def json(self) -> Any:
        return json.loads(self.response_body)


def send(base_url: str, method: str, url: str, headers: dict[str, str], body: bytes | None) -> Sent:
    """One request with exactly these headers (http.client adds only Host/Content-Length)."""
    target = urlsplit(url)
    base = urlsplit(base_url)
    conn = http.client.HTTPConnection(base.hostname, base.port, timeout=30)
    try:
        path = target.path + (f"?{target.query}" if target.query else "")
        conn.putrequest(method, path, skip_accept_encoding=True)
        wire = list(headers.items())
        for key, value in wire:
            conn.putheader(key, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return Sent(
            method,
            path,
            wire,
            body,
            response.status,
            {k.lower(): v for k, v in response.getheaders()},
            response.read(),
        )
    finally:
        conn.close()


def web_activity(
    activity: dict[str, Any], ctx: Context, base_url: str, poll_limit: float = 120
) -> list[Sent]:
    """A Web activity: the request, then (async pattern) GETs of Location until not 202."""
    props = activity["typeProperties"]
    method = props["method"]
    url = evaluate(props["url"], ctx)
    headers = {k: str(evaluate(v, ctx)) for k, v in (props.get("headers") or {}).items()}
    body = evaluate(props["body"], ctx) if "body" in props else None
    data = None if body is None else (body if isinstance(body, str) else json.dumps(body))
    sent = [send(base_url, method, url, headers, None if data is None else data.encode())]
    deadline = time.monotonic() + poll_limit
    while (
        sent[-1].status == 202
        and not props.get("disableAsyncPattern", False)
        and "location" in sent[-1].response_headers
    ):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{activity['name']}: still 202 after {poll_limit}s")
        time.sleep(min(float(sent[-1].response_headers.get("retry-after", "1")), 0.5))
        location = sent[-1].response_headers["location"]
        poll_headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        sent.append(send(base_url, "GET", base_url + location, poll_headers, None))
    if sent[-1].status >= 400:
        raise AssertionError(
            f"{activity['name']}: {sent[-1].status} {sent[-1].response_body[:300]!r}"
        )
    ctx.outputs[activity["name"]] = sent[-1].json()
    return sent


def lookup_http(activity: dict[str, Any], ctx: Context, base_url: str) -> Sent:
    """A Lookup over an HTTP dataset: requestMethod, relativeUrl, additionalHeaders lines."""
    source = activity["typeProperties"]["source"]
    lines = str(evaluate(source.get("additionalHeaders", ""), ctx)).splitlines()
    headers = dict(line.split(": ", 1) for line in lines if line.strip())
    body = source.get("requestBody")
    sent = send(
        base_url,
        source["requestMethod"],
        base_url + source["relativeUrl"],
        headers,
        None if body is None else str(evaluate(body, ctx)).encode(),
    )
    if sent.status >= 400:
        raise AssertionError(f"{activity['name']}: {sent.status} {sent.response_body[:300]!r}")
    ctx.outputs[activity["name"]] = {"firstRow": sent.json()}
    return sent
