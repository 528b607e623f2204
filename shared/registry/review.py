"""Reviewing versions: a decision on a candidate (approve moves ``champion``) and comparisons."""

from __future__ import annotations

from typing import Any

from azure.core import MatchConditions
from azure.data.tables import TableClient, UpdateMode

from shared.registry.refs import parse_model_ref
from shared.registry.rows import row_key
from shared.registry.schemas import (
    AliasInfo,
    BestValue,
    ComparedModel,
    CompareResult,
    Decision,
    DecisionBody,
    VersionInfo,
)
from shared.tables import utcnow

LOWER_IS_BETTER = frozenset(
    {"mae", "mse", "rmse", "log_loss", "mape", "max_error", "median_absolute_error", "brier"}
)


class RegistryReview:
    """The review half of :class:`~shared.registry.store.ModelRegistry` (a mixin)."""

    models: TableClient

    def _row(self, name: str, version: int) -> dict[str, Any]:
        raise NotImplementedError

    def get_version(self, name: str, version: int) -> VersionInfo:
        raise NotImplementedError

    def set_alias(self, name: str, alias: str, version: int, by: str) -> AliasInfo:
        raise NotImplementedError

    def resolve(self, name: str, version: int | None = None, alias: str | None = None) -> int:
        raise NotImplementedError

    # --- decisions and comparisons -------------------------------------------------------------
    def decide(self, name: str, version: int, body: DecisionBody, by: str) -> VersionInfo:
        row = self._row(name, version)
        decision = Decision(**body.model_dump(), decided_by=by, decided_at=utcnow())
        self.models.update_entity(
            {
                "PartitionKey": name,
                "RowKey": row_key(version),
                "decision": decision.model_dump_json(),
            },
            mode=UpdateMode.MERGE,
            etag=row.metadata["etag"],
            match_condition=MatchConditions.IfNotModified,
        )
        if body.decision == "approve":
            self.set_alias(name, "champion", version, by)
        return self.get_version(name, version)

    def compare(self, refs: list[str], metrics: list[str] | None) -> CompareResult:
        compared = []
        for ref in refs:
            name, version_number, alias = parse_model_ref(ref)
            version = (
                self.resolve(name, version=version_number)
                if version_number is not None
                else self.resolve(name, alias=alias)
            )
            compared.append((ref, name, version, self.get_version(name, version).metrics))
        wanted = metrics or sorted({m for *_, ms in compared for m in ms})
        best: dict[str, BestValue] = {}
        for metric in wanted:
            lower = metric.lower() in LOWER_IS_BETTER
            scored = [(ms[metric], ref) for ref, _, _, ms in compared if metric in ms]
            if scored:
                value, ref = (min if lower else max)(scored, key=lambda s: s[0])
                best[metric] = BestValue(ref=ref, value=value, higher_is_better=not lower)
        return CompareResult(
            models=[
                ComparedModel(ref=ref, name=n, version=v, metrics={m: ms.get(m) for m in wanted})
                for ref, n, v, ms in compared
            ],
            best=best,
        )
