"""Anomaly / quality reports over a window: what the batch scorings and the logged online
predictions of a model say, per partition, kept in Blob as a document.

Sources, for ``[from, to)``:

* the scored outputs ``scored/{model}/{job}.parquet`` written in the window (batch
  scoring): per partition the rows scored, the anomalies (prediction -1) and their rate,
  the most anomalous rows (lowest ``score``) with their key columns; for classifiers the
  predicted classes and the least confident rows (lowest ``probability``);
* the prediction log: drift of the logged inputs against the training profile, per
  feature (the drift route's own test), when requests were logged in the window;
* the versions that answered (``model_version`` of the scored rows).

A report is built once (``POST /reports``), stored as ``reports/{id}.json`` and served as
JSON or as a printable HTML page (no script; every value escaped). pandas/pyarrow load
on the first report, never on import.
"""

from __future__ import annotations

import html
import io
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import ResourceNotFoundError

from shared.errors import AppError, NotFound, ValidationFailed
from shared.monitoring.schemas import (
    PartitionReport,
    Report,
    ReportRequest,
    ReportSummary,
    ScoredRow,
)
from shared.names import check_name

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

    from shared.registry.store import ModelRegistry

MAX_SCORED_FILES = 200
MAX_ROWS = 5_000_000
MAX_DRIFT_PARTITIONS = 50  # each is one read of the prediction log over the window
DEFAULT_WINDOW = timedelta(days=30)
_OUTPUT_COLUMNS = {"prediction", "score", "probability", "model_version"}
ALL = "__all__"


class ReportTooLarge(AppError):
    status, code, title = 413, "REPORT_TOO_LARGE", "Report window too large"


def _plain(value: Any) -> Any:
    """numpy scalars as Python ones, NaN as None."""
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and value != value else value


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


class ReportBuilder:
    def __init__(
        self,
        reports: ContainerClient,
        scored: ContainerClient,
        registry: ModelRegistry,
        drift_monitor: Callable[[], Any],
    ) -> None:
        self.reports = reports
        self.scored = scored
        self.registry = registry
        self._drift = drift_monitor  # a factory: listing reports builds no monitor

    # --- build --------------------------------------------------------------------------------

    def build(self, body: ReportRequest, by: str) -> Report:
        check_name(body.model, "model")
        model = self.registry.get_model(body.model)  # 404 for an unknown model
        to = body.to or datetime.now(UTC)
        start = body.from_ or to - DEFAULT_WINDOW
        if start >= to:
            raise ValidationFailed(
                "'from' must be before 'to'.",
                [{"loc": ["body", "from"], "msg": "after 'to'", "type": "value_error"}],
            )
        latest = self.registry.get_version(body.model, model.latest_version or 0)
        task = latest.task
        partition_by = latest.params.get("partition_by")
        frame, files = self._scored_rows(body.model, start, to)
        partitions = self._partitions(frame, task, partition_by, body)
        versions = sorted(
            {int(v) for v in frame["model_version"].dropna()} if "model_version" in frame else set()
        )
        for part in partitions[:MAX_DRIFT_PARTITIONS]:
            part.drift, part.drift_note = self._drift_report(body.model, part.partition, to - start)
        for part in partitions[MAX_DRIFT_PARTITIONS:]:
            part.drift_note = f"Drift is reported for the first {MAX_DRIFT_PARTITIONS} partitions."
        report = Report(
            id=uuid.uuid4().hex,
            model=body.model,
            task=task,
            partition_by=partition_by,
            partition=body.partition,
            window_from=start,
            window_to=to,
            created_at=datetime.now(UTC),
            created_by=by,
            scored_files=files,
            rows=len(frame),
            versions=versions,
            partitions=partitions,
        )
        self.reports.upload_blob(
            f"{report.id}.json",
            report.model_dump_json().encode(),
            overwrite=False,
            metadata={"model": body.model, "created_at": _iso(report.created_at)},
        )
        return report

    def _scored_rows(self, model: str, start: datetime, to: datetime) -> tuple[Any, list[str]]:
        import pandas as pd
        import pyarrow.parquet as pq

        files = [
            b
            for b in self.scored.list_blobs(name_starts_with=f"{model}/")
            if b.name.count("/") == 1
            and b.name.endswith(".parquet")
            and start <= b.last_modified < to
        ]
        if len(files) > MAX_SCORED_FILES:
            raise ReportTooLarge(
                f"{len(files)} scorings of {model} fall in the window; a report reads at most"
                f" {MAX_SCORED_FILES}: choose a shorter window."
            )
        frames, total = [], 0
        for blob in sorted(files, key=lambda b: b.last_modified):
            data = self.scored.download_blob(blob.name).readall()
            parquet = pq.ParquetFile(io.BytesIO(data))
            total += parquet.metadata.num_rows
            if total > MAX_ROWS:
                raise ReportTooLarge(
                    f"The window holds more than {MAX_ROWS} scored rows: choose a shorter one."
                )
            frame = parquet.read().to_pandas()
            frames.append(frame.assign(scoring=blob.name.rsplit("/", 1)[1][: -len(".parquet")]))
        if not frames:
            return pd.DataFrame(), []
        return pd.concat(frames, ignore_index=True), [f.name for f in files]

    def _partitions(
        self, frame: Any, task: str | None, partition_by: str | None, body: ReportRequest
    ) -> list[PartitionReport]:
        if frame.empty or "prediction" not in frame:
            return []
        column = partition_by if partition_by and partition_by in frame else None
        if body.partition is not None:
            if column is None:
                raise ValidationFailed(f"{body.model} is not partitioned: drop 'partition'.")
            frame = frame[frame[column].astype(str) == body.partition]
        groups = frame.groupby(frame[column].astype(str)) if column else [(ALL, frame)]
        keys = [c for c in frame.columns if c not in _OUTPUT_COLUMNS and c != "scoring"]
        return [self._partition(str(part), rows, task, keys, body.top) for part, rows in groups]

    @staticmethod
    def _partition(
        part: str, rows: Any, task: str | None, keys: list[str], top: int
    ) -> PartitionReport:
        predictions = rows["prediction"]
        report = PartitionReport(partition=None if part == ALL else part, rows=len(rows))
        if task == "anomaly":
            anomalies = int((predictions == -1).sum())
            report.anomalies = anomalies
            report.anomaly_rate = anomalies / len(rows) if len(rows) else 0.0
            ranked = rows.sort_values("score", kind="stable") if "score" in rows else rows
            worst = ranked[ranked["prediction"] == -1].head(top)
        else:
            counts = predictions.astype(str).value_counts()
            report.predicted = {str(k): int(v) for k, v in counts.items()}
            ranked = (
                rows.sort_values("probability", kind="stable") if "probability" in rows else rows
            )
            worst = ranked.head(top) if "probability" in rows else ranked.iloc[0:0]
        report.top_rows = [
            ScoredRow(
                keys=json.loads(row[keys].to_json(date_format="iso")),
                prediction=_plain(row["prediction"]),
                score=float(row["score"])
                if "score" in row and row["score"] == row["score"]
                else None,
                probability=float(row["probability"]) if "probability" in row else None,
                model_version=int(row["model_version"]) if "model_version" in row else None,
                scoring=str(row["scoring"]),
            )
            for _, row in worst.iterrows()
        ]
        return report

    def _drift_report(
        self, model: str, partition: str | None, window: timedelta
    ) -> tuple[Any, str | None]:
        from shared.monitoring.schemas import RecentDriftQuery

        hours = min(window.total_seconds() / 3600, 24 * 90)
        query = RecentDriftQuery(hours=max(hours, 0.01), partition=partition)
        try:
            return self._drift().on_recent(model, query).model_dump(mode="json"), None
        except NotFound as exc:
            return None, exc.detail
        except AppError as exc:  # e.g. a version without a training profile
            return None, exc.detail

    # --- read ---------------------------------------------------------------------------------

    def get(self, report_id: str) -> Report:
        if not report_id.isalnum() or len(report_id) != 32:
            raise NotFound("No such report.", code="REPORT_NOT_FOUND")
        try:
            raw = self.reports.download_blob(f"{report_id}.json").readall()
        except ResourceNotFoundError:
            raise NotFound("No such report.", code="REPORT_NOT_FOUND") from None
        return Report.model_validate_json(raw)

    def list(self, model: str | None, limit: int) -> list[ReportSummary]:
        if model is not None:
            check_name(model, "model")
        found = []
        for blob in self.reports.list_blobs(include=["metadata"]):
            meta = blob.metadata or {}
            if model is not None and meta.get("model") != model:
                continue
            found.append(
                ReportSummary(
                    id=blob.name[: -len(".json")],
                    model=meta.get("model", ""),
                    created_at=datetime.fromisoformat(meta["created_at"])
                    if meta.get("created_at")
                    else blob.last_modified,
                )
            )
        found.sort(key=lambda r: r.created_at, reverse=True)
        return found[:limit]


def render_html(report: Report) -> str:
    """A printable page: every value escaped, no script, styles inline in one block."""

    def e(value: Any) -> str:
        return html.escape("" if value is None else str(value))

    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Report {e(report.model)} {e(report.window_from.date())}</title>",
        "<style>body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#111}"
        "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #999;"
        "padding:.2em .5em;text-align:left}th{background:#eee}.bad{color:#a00;"
        "font-weight:600}@media print{body{margin:0}}</style></head><body>",
        f"<h1>Report: {e(report.model)}</h1>",
        f"<p>Window {e(_iso(report.window_from))} to {e(_iso(report.window_to))}."
        f" Task: {e(report.task)}. Rows scored: {report.rows}. Versions:"
        f" {e(', '.join(map(str, report.versions)) or 'none')}.</p>",
        "<h2>Partitions</h2><table><thead><tr><th scope='col'>Partition</th>"
        "<th scope='col'>Rows</th><th scope='col'>Anomalies</th><th scope='col'>Rate</th>"
        "<th scope='col'>Predicted</th></tr></thead><tbody>",
    ]
    for p in report.partitions:
        rate = "" if p.anomaly_rate is None else f"{p.anomaly_rate:.2%}"
        parts.append(
            f"<tr><td>{e(p.partition or 'all')}</td><td>{p.rows}</td><td>{e(p.anomalies)}</td>"
            f"<td>{e(rate)}</td><td>{e(json.dumps(p.predicted) if p.predicted else '')}</td></tr>"
        )
    parts.append("</tbody></table>")
    for p in report.partitions:
        if not p.top_rows:
            continue
        parts.append(f"<h3>Top rows: {e(p.partition or 'all')}</h3><table><thead><tr>")
        keys = list(p.top_rows[0].keys)
        for name in [*keys, "prediction", "score", "probability", "version"]:
            parts.append(f"<th scope='col'>{e(name)}</th>")
        parts.append("</tr></thead><tbody>")
        for row in p.top_rows:
            cells = [row.keys.get(k) for k in keys]
            cells += [row.prediction, row.score, row.probability, row.model_version]
            parts.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>")
        parts.append("</tbody></table>")
    parts.append("<h2>Drift of logged inputs</h2>")
    for p in report.partitions:
        parts.append(f"<h3>{e(p.partition or 'all')}</h3>")
        if p.drift is None:
            parts.append(f"<p>{e(p.drift_note)}</p>")
            continue
        parts.append(
            "<table><thead><tr><th scope='col'>Feature</th><th scope='col'>Test</th>"
            "<th scope='col'>p-value</th><th scope='col'>PSI</th><th scope='col'>Drift</th>"
            "</tr></thead><tbody>"
        )
        for f in p.drift.get("features", []):
            flag = "<span class='bad'>yes</span>" if f.get("drift") else "no"
            parts.append(
                f"<tr><td>{e(f.get('name'))}</td><td>{e(f.get('test'))}</td>"
                f"<td>{e(f.get('p_value'))}</td><td>{e(f.get('psi'))}</td><td>{flag}</td></tr>"
            )
        parts.append("</tbody></table>")
    parts.append(f"<p>Report {e(report.id)}, made {e(_iso(report.created_at))} by")
    parts.append(f" {e(report.created_by)}.</p></body></html>")
    return "".join(parts)
