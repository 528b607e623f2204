"""Rate limits per API key or user and route group, one budget shared by every instance.

A policy is ``N/S``: at most N requests per fixed window of S seconds, per subject
(``key:{api key id}`` or ``user:{user id}``) and route group (``predict``, ``drift``,
``evaluate``, ``upload``, ``train``). The budget lives in Table ``RateLimits``
(PartitionKey = group, RowKey = ``{subject}|{window start}``), where an ETag-guarded
counter records the requests *reserved* by all instances.

So that a limit does not cost a Table round trip per prediction, an instance reserves a
block of the budget at a time (1 for small limits, so ``10/60`` is exact; ``limit/20`` for
large ones) and serves from it until it is used up. The shared counter never exceeds the
limit, so all instances together never admit more than N per window; an instance may hold
at most one unused block, which others then cannot use until the window ends.

Responses of a limited route carry the IETF httpapi draft headers
(draft-ietf-httpapi-ratelimit-headers): ``RateLimit-Policy: "predict";q=600;w=60`` and
``RateLimit: "predict";r=599;t=42`` (remaining, seconds to the window's end); over the
limit, 429 problem+json with ``Retry-After``. ``remaining`` is this instance's view:
exact with one instance, an upper bound with several.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, UpdateMode
from pydantic import BaseModel

from shared.errors import ServiceUnavailable, TooManyRequests, ValidationFailed

GROUPS = ("predict", "drift", "evaluate", "upload", "train")


@dataclass(frozen=True)
class Policy:
    group: str
    limit: int
    window: int  # seconds

    @classmethod
    def parse(cls, group: str, text: str) -> Policy | None:
        """``"600/60"`` -> 600 per 60 s; ``""`` or ``"off"`` -> no limit."""
        text = text.strip().lower()
        if text in ("", "off", "none", "0"):
            return None
        count, _, seconds = text.partition("/")
        try:
            limit, window = int(count), int(seconds or 60)
        except ValueError:
            raise ValueError(
                f"rate limit for {group} must look like 600/60, not {text!r}"
            ) from None
        if limit < 1 or not 1 <= window <= 86_400:
            raise ValueError(f"rate limit for {group}: 1+ requests per 1 to 86400 seconds")
        return cls(group, limit, window)

    @property
    def block(self) -> int:
        return max(1, self.limit // 20)

    def header(self) -> str:
        return f'"{self.group}";q={self.limit};w={self.window}'


@dataclass(frozen=True)
class Decision:
    policy: Policy
    allowed: bool
    remaining: int
    reset: int  # seconds to the end of the window

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Policy": self.policy.header(),
            "RateLimit": f'"{self.policy.group}";r={self.remaining};t={self.reset}',
        }


@dataclass
class _Bucket:
    tokens: int = 0  # reserved by this instance and not used yet
    reserved_total: int = 0  # the shared counter after this instance's last reservation


class RateLimiter:
    def __init__(
        self,
        table: TableClient,
        policies: dict[str, Policy],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.table = table
        self.policies = policies
        self.clock = clock
        self._buckets: dict[tuple[str, str, int], _Bucket] = {}
        self._lock = threading.Lock()

    def check(self, group: str, subject: str) -> Decision | None:
        """Use one request of the budget; None when the group has no limit."""
        policy = self.policies.get(group)
        if policy is None:
            return None
        now = self.clock()
        start = int(now // policy.window) * policy.window
        reset = max(1, math.ceil(start + policy.window - now))
        key = (group, subject, start)
        with self._lock:
            bucket = self._buckets.setdefault(key, _Bucket())
            if bucket.tokens == 0:
                bucket.reserved_total, bucket.tokens = self._reserve(policy, subject, start)
                self._forget_old(now)
            if bucket.tokens == 0:
                return Decision(policy, False, 0, reset)
            bucket.tokens -= 1
            remaining = policy.limit - bucket.reserved_total + bucket.tokens
        return Decision(policy, True, max(0, remaining), reset)

    def _reserve(self, policy: Policy, subject: str, start: int) -> tuple[int, int]:
        """(shared counter after, tokens reserved) for one block of this window."""
        row_key = f"{subject}|{start}"
        for _ in range(50):
            try:
                row = self.table.get_entity(policy.group, row_key)
            except ResourceNotFoundError:
                take = min(policy.block, policy.limit)
                try:
                    self.table.create_entity(
                        {
                            "PartitionKey": policy.group,
                            "RowKey": row_key,
                            "subject": subject,
                            "window_start": start,
                            "reserved": take,
                            "limit": policy.limit,
                        }
                    )
                    return take, take
                except ResourceExistsError:
                    continue
            used = int(row.get("reserved") or 0)
            take = min(policy.block, policy.limit - used)
            if take <= 0:
                return used, 0
            try:
                self.table.update_entity(
                    {"PartitionKey": policy.group, "RowKey": row_key, "reserved": used + take},
                    mode=UpdateMode.MERGE,
                    etag=row.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
                return used + take, take
            except ResourceModifiedError:
                continue
        raise ServiceUnavailable("The rate limit counter stayed contended; retry.")

    def _forget_old(self, now: float) -> None:
        stale = [k for k in self._buckets if k[2] + self.policies[k[0]].window <= now - 1]
        for k in stale:
            del self._buckets[k]

    # --- admin ---------------------------------------------------------------------------

    def usage(self, subject: str) -> list[dict[str, Any]]:
        """The subject's current window per limited group (budget reserved so far)."""
        now = self.clock()
        out = []
        for group, policy in sorted(self.policies.items()):
            start = int(now // policy.window) * policy.window
            try:
                row = self.table.get_entity(group, f"{subject}|{start}")
                used = int(row.get("reserved") or 0)
            except ResourceNotFoundError:
                used = 0
            out.append(
                {
                    "group": group,
                    "limit": policy.limit,
                    "window_seconds": policy.window,
                    "used": used,
                    "remaining": max(0, policy.limit - used),
                    "reset_seconds": max(1, math.ceil(start + policy.window - now)),
                }
            )
        return out

    def reset(self, subject: str) -> int:
        """Drop the subject's current windows; instances' unused blocks expire with them."""
        now = self.clock()
        removed = 0
        for group, policy in self.policies.items():
            start = int(now // policy.window) * policy.window
            with contextlib.suppress(ResourceNotFoundError):
                self.table.delete_entity(group, f"{subject}|{start}")
                removed += 1
        with self._lock:
            for key in [k for k in self._buckets if k[1] == subject]:
                del self._buckets[key]
        return removed


def subject_of(principal: Any) -> str:
    """API keys are limited per key, people per account."""
    if principal.kind == "api_key" and principal.token_id:
        return f"key:{principal.token_id}"
    return f"user:{principal.user_id}"


def check_subject(subject: str) -> str:
    kind, _, ident = subject.partition(":")
    if kind not in ("key", "user") or not ident or len(ident) > 100 or not ident.isascii():
        raise ValidationFailed("A subject is key:<api key id> or user:<user id>.")
    if any(c in ident for c in "/\\#?|") or not ident.isprintable():
        raise ValidationFailed("A subject is key:<api key id> or user:<user id>.")
    return subject


def over_limit(decision: Decision) -> TooManyRequests:
    error = TooManyRequests(
        f"Rate limit of {decision.policy.limit} {decision.policy.group} requests per"
        f" {decision.policy.window} s reached; retry in {decision.reset} s.",
        retry_after=decision.reset,
        code="RATE_LIMITED",
    )
    error.headers.update(decision.headers())
    return error


# --- API models (GET /rate-limits/{subject}) ------------------------------------------------


class GroupUsage(BaseModel):
    group: str
    limit: int
    window_seconds: int
    used: int
    remaining: int
    reset_seconds: int


class RateLimitUsage(BaseModel):
    subject: str
    groups: list[GroupUsage]
