"""Azure Functions (ASP.NET-style) route templates: parsing, matching and precedence.

Supported syntax per segment: literals (matched case-insensitively), ``{name}``,
``{name?}`` (optional, trailing only), ``{name=default}``, ``{*rest}`` / ``{**rest}``
(catch-all, last segment, may match nothing), constraints chained with ``:`` such as
``{id:int}``, ``{v:minlength(3):alpha}``, ``{code:regex(^\\d{{3}}$)}``, and complex segments
mixing literals and parameters (``{name}.{ext}``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar
from urllib.parse import unquote

T = TypeVar("T")

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)


def _is_int(value: str, bounds: tuple[int, int]) -> bool:
    if not re.fullmatch(r"[+-]?\d+", value):
        return False
    return bounds[0] <= int(value) <= bounds[1]


def _is_float(value: str) -> bool:
    return re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", value) is not None


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _int_args(name: str, args: list[str], count: int) -> list[int]:
    if len(args) != count or not all(re.fullmatch(r"-?\d+", a) for a in args):
        raise ValueError(f"route constraint {name!r} expects {count} integer argument(s)")
    return [int(a) for a in args]


def _build_constraint(name: str, raw_args: str | None) -> Callable[[str], bool]:
    """Turn ``int`` or ``range(1,5)`` into a predicate; unknown names fail like the host does."""
    simple: dict[str, Callable[[str], bool]] = {
        "int": lambda v: _is_int(v, _INT32),
        "long": lambda v: _is_int(v, _INT64),
        "bool": lambda v: v.lower() in ("true", "false"),
        "guid": _is_guid,
        "double": _is_float,
        "float": _is_float,
        "decimal": _is_float,
        "datetime": _is_datetime,
        "alpha": lambda v: bool(re.fullmatch(r"[A-Za-z]+", v)),
        "required": lambda v: v != "",
    }
    key = name.lower()
    if key in simple:
        if raw_args is not None:
            raise ValueError(f"route constraint {name!r} takes no arguments")
        return simple[key]
    if raw_args is None:
        raise ValueError(f"unknown route constraint {name!r}")
    if key == "regex":
        pattern = re.compile(raw_args, re.IGNORECASE)
        return lambda v: pattern.search(v) is not None
    args = [a.strip() for a in raw_args.split(",")]
    if key == "minlength":
        (n,) = _int_args(name, args, 1)
        return lambda v: len(v) >= n
    if key == "maxlength":
        (n,) = _int_args(name, args, 1)
        return lambda v: len(v) <= n
    if key == "length" and len(args) == 1:
        (n,) = _int_args(name, args, 1)
        return lambda v: len(v) == n
    if key == "length":
        lo, hi = _int_args(name, args, 2)
        return lambda v: lo <= len(v) <= hi
    if key == "min":
        (n,) = _int_args(name, args, 1)
        return lambda v: _is_int(v, _INT64) and int(v) >= n
    if key == "max":
        (n,) = _int_args(name, args, 1)
        return lambda v: _is_int(v, _INT64) and int(v) <= n
    if key == "range":
        lo, hi = _int_args(name, args, 2)
        return lambda v: _is_int(v, _INT64) and lo <= int(v) <= hi
    raise ValueError(f"unknown route constraint {name!r}")


@dataclass(frozen=True)
class _Param:
    name: str
    constraints: tuple[Callable[[str], bool], ...] = ()
    optional: bool = False
    default: str | None = None
    catch_all: bool = False

    def accepts(self, value: str) -> bool:
        return all(check(value) for check in self.constraints)


def _split_top_level(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside parentheses, so ``regex(a:b)`` stays in one piece."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _parse_param(body: str, template: str) -> _Param:
    catch_all = body.startswith("*")
    body = body.lstrip("*")
    default = None
    pieces = _split_top_level(body, ":")
    head, constraint_texts = pieces[0], pieces[1:]
    optional = head.endswith("?")
    head = head.rstrip("?")
    if "=" in head:
        head, default = head.split("=", 1)
    if constraint_texts and constraint_texts[-1].endswith("?") and not optional:
        optional, constraint_texts[-1] = True, constraint_texts[-1][:-1]
    if constraint_texts and "=" in constraint_texts[-1] and default is None:
        constraint_texts[-1], default = constraint_texts[-1].split("=", 1)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", head):
        raise ValueError(f"invalid route parameter name {head!r} in {template!r}")
    constraints = []
    for text in constraint_texts:
        m = re.fullmatch(r"([A-Za-z]+)(?:\((.*)\))?", text, re.DOTALL)
        if not m:
            raise ValueError(f"invalid route constraint {text!r} in {template!r}")
        constraints.append(_build_constraint(m.group(1), m.group(2)))
    return _Param(head, tuple(constraints), optional or default is not None, default, catch_all)


def _tokenize_segment(segment: str, template: str) -> list[str | _Param]:
    """Split one template segment into literal text and parameters."""
    parts: list[str | _Param] = []
    literal, i = [], 0
    while i < len(segment):
        ch = segment[i]
        if segment.startswith("{{", i) or segment.startswith("}}", i):
            literal.append(ch)
            i += 2
            continue
        if ch == "}":
            raise ValueError(f"unbalanced '}}' in route template {template!r}")
        if ch != "{":
            literal.append(ch)
            i += 1
            continue
        depth, j = 0, i + 1
        while j < len(segment) and not (segment[j] == "}" and depth == 0):
            depth += {"(": 1, ")": -1}.get(segment[j], 0)
            j += 1
        if j >= len(segment):
            raise ValueError(f"unbalanced '{{' in route template {template!r}")
        if literal:
            parts.append("".join(literal))
            literal = []
        parts.append(_parse_param(segment[i + 1 : j].replace("}}", "}"), template))
        i = j + 1
    if literal:
        parts.append("".join(literal))
    return parts


# Precedence digits per segment, lower is more specific (ASP.NET RoutePrecedence, inbound).
_LITERAL, _COMPLEX, _CONSTRAINED, _PARAM, _CATCH_ALL = 1, 2, 3, 4, 5


@dataclass(frozen=True)
class RouteTemplate:
    """A compiled route template; ``match`` takes the raw (percent-encoded) request path."""

    text: str
    segments: tuple[tuple[str | _Param, ...], ...]
    precedence: tuple[int, ...]

    @classmethod
    def parse(cls, template: str, prefix: str = "") -> RouteTemplate:
        full = "/".join(p.strip("/") for p in (prefix, template.lstrip("~")) if p.strip("/"))
        segments = [] if full == "" else full.split("/")
        parsed: list[tuple[str | _Param, ...]] = []
        precedence: list[int] = []
        names: set[str] = set()
        for index, raw in enumerate(segments):
            if raw == "":
                raise ValueError(f"empty segment in route template {template!r}")
            tokens = tuple(_tokenize_segment(raw, template))
            params = [t for t in tokens if isinstance(t, _Param)]
            last = index == len(segments) - 1
            for p in params:
                if p.name.lower() in names:
                    raise ValueError(f"duplicate route parameter {p.name!r} in {template!r}")
                names.add(p.name.lower())
                if p.catch_all and not (last and len(tokens) == 1):
                    raise ValueError(f"catch-all must be the whole last segment in {template!r}")
            if len(tokens) > 1 and any(p.optional for p in params[:-1]):
                raise ValueError(f"only the last parameter of a segment may be optional: {raw!r}")
            parsed.append(tokens)
            precedence.append(_segment_precedence(tokens))
        optional_flags = [
            len(t) == 1 and isinstance(t[0], _Param) and t[0].optional for t in parsed
        ]
        first_optional = optional_flags.index(True) if True in optional_flags else len(parsed)
        if not all(optional_flags[first_optional:]):
            raise ValueError(f"optional parameter must be at the end of {template!r}")
        return cls(full, tuple(parsed), tuple(precedence))

    def match(self, path: str) -> dict[str, str] | None:
        """Return decoded route params when ``path`` fits this template, else None."""
        stripped = path.strip("/")
        raw_segments = [] if stripped == "" else stripped.split("/")
        values: dict[str, str] = {}
        for index, tokens in enumerate(self.segments):
            if len(tokens) == 1 and isinstance(tokens[0], _Param) and tokens[0].catch_all:
                rest = "/".join(decode_segment(s) for s in raw_segments[index:])
                if rest:
                    if not tokens[0].accepts(rest):
                        return None
                    values[tokens[0].name] = rest
                elif tokens[0].default is not None:
                    values[tokens[0].name] = tokens[0].default
                return values
            if index >= len(raw_segments):
                if not self._rest_optional(index, values):
                    return None
                return values
            if not _match_segment(tokens, decode_segment(raw_segments[index]), values):
                return None
        return values if len(raw_segments) == len(self.segments) else None

    def _rest_optional(self, index: int, values: dict[str, str]) -> bool:
        for tokens in self.segments[index:]:
            param = tokens[-1] if isinstance(tokens[-1], _Param) else None
            if len(tokens) != 1 or param is None or not (param.optional or param.catch_all):
                return False
            if param.default is not None:
                values[param.name] = param.default
        return True


_ENCODED_SLASH = re.compile("%2f", re.IGNORECASE)


def decode_segment(segment: str) -> str:
    """Percent-decode one path segment as ASP.NET Core does: everything except ``%2F``,
    which stays encoded, so an encoded slash never splits a route value."""
    return unquote(_ENCODED_SLASH.sub(lambda m: "%25" + m.group(0)[1:], segment))


def _segment_precedence(tokens: tuple[str | _Param, ...]) -> int:
    if len(tokens) > 1:
        return _COMPLEX
    token = tokens[0]
    if isinstance(token, str):
        return _LITERAL
    if token.catch_all:
        return _CATCH_ALL
    return _CONSTRAINED if token.constraints else _PARAM


def _match_segment(tokens: tuple[str | _Param, ...], value: str, out: dict[str, str]) -> bool:
    if len(tokens) == 1:
        token = tokens[0]
        if isinstance(token, str):
            return token.casefold() == value.casefold()
        if value == "" or not token.accepts(value):
            return False
        out[token.name] = value
        return True
    # Complex segment: lazy parameters between literals approximate ASP.NET's matcher.
    pattern = "".join(
        re.escape(t) if isinstance(t, str) else f"(?P<p{i}>.+?)" for i, t in enumerate(tokens)
    )
    m = re.fullmatch(pattern, value, re.IGNORECASE | re.DOTALL)
    if not m:
        return False
    found = {}
    for i, token in enumerate(tokens):
        if isinstance(token, _Param):
            if not token.accepts(m.group(f"p{i}")):
                return False
            found[token.name] = m.group(f"p{i}")
    out.update(found)
    return True


@dataclass(frozen=True)
class Route(Generic[T]):
    """One HTTP-triggered endpoint; ``methods`` None means every method is accepted."""

    template: RouteTemplate
    methods: frozenset[str] | None
    target: T


@dataclass(frozen=True)
class RouteMatch(Generic[T]):
    """Outcome of a lookup: status 200 (``route`` set), 404, or 405 (``allowed`` filled)."""

    status: int
    route: Route[T] | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    allowed: frozenset[str] = frozenset()


def normalize_methods(methods: Iterable[object] | None) -> frozenset[str] | None:
    """Upper-case method names, accepting the ``HttpMethod`` enums azure.functions produces."""
    if not methods:
        return None
    return frozenset(str(getattr(m, "value", m)).upper() for m in methods)


class RouteTable(Generic[T]):
    """Routes behind a routePrefix, matched most-specific-first among those allowing the method."""

    def __init__(self, route_prefix: str = "api") -> None:
        self.route_prefix = route_prefix.strip("/")
        self._routes: list[Route[T]] = []

    def add(self, template: str, methods: Iterable[object] | None, target: T) -> Route[T]:
        route = Route(
            RouteTemplate.parse(template, self.route_prefix), normalize_methods(methods), target
        )
        self._routes.append(route)
        self._routes.sort(key=lambda r: (r.template.precedence, r.template.text.lower()))
        return route

    @property
    def routes(self) -> list[Route[T]]:
        return list(self._routes)

    def match(self, method: str, path: str) -> RouteMatch[T]:
        method = method.upper()
        allowed: set[str] = set()
        for route in self._routes:
            params = route.template.match(path)
            if params is None:
                continue
            if route.methods is None or method in route.methods:
                return RouteMatch(200, route, params)
            allowed |= route.methods
        if allowed:
            return RouteMatch(405, allowed=frozenset(allowed))
        return RouteMatch(404)
