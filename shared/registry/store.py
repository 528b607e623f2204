"""Where a model is written to Blob and its metadata to Table Storage.

Layout: blob ``models/{name}/{version}/model.<ext>`` and ``.../artifacts/<file>``;
Table ``Models`` (PartitionKey = name, RowKey = zero-padded version, plus a ``~meta``
row holding the version counter) and Table ``Aliases`` (PartitionKey = name, RowKey =
alias).

Ordering guarantees: a version number is reserved first (ETag-guarded counter, so
concurrent uploads get distinct numbers and a number is never reused); the blobs are
written next; the version row is created last, in one transaction with the model's
``latest_version``. A crash therefore never leaves a row pointing at a missing blob;
blobs left without a row are removed by :meth:`ModelRegistry.sweep_orphans`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import re
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, TableTransactionError, UpdateMode
from azure.storage.blob import ContainerClient

from shared.errors import (
    Conflict,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    ValidationFailed,
)
from shared.names import ALIAS_PATTERN, check_alias, check_name
from shared.registry.schemas import (
    AliasInfo,
    BestValue,
    ComparedModel,
    CompareResult,
    Decision,
    DecisionBody,
    FileCheck,
    Lineage,
    ModelDetail,
    ModelSummary,
    Promotion,
    StoredFile,
    VerifyResult,
    VersionBrief,
    VersionInfo,
    VersionMetadata,
    VersionQuery,
    VersionSummary,
)
from shared.registry.signing import (
    ModelSignatureInvalid,
    ModelSigner,
    SignatureStatus,
    signed_content,
)
from shared.tables import iso, page, parse_iso, utcnow

MODELS_TABLE = "Models"
ALIASES_TABLE = "Aliases"
CONTAINER = "models"
META = "~meta"  # sorts after every zero-padded version
ARTIFACT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,127}$")
MAX_ARTIFACTS = 100
LOWER_IS_BETTER = frozenset(
    {"mae", "mse", "rmse", "log_loss", "mape", "max_error", "median_absolute_error", "brier"}
)


MODEL_REF_FORMS = "name@version, name@alias, models:/name/version or models:/name@alias"
_MODEL_REF = re.compile(
    r"^(?:models:/(?P<uri_name>[^/@]+)(?:/(?P<uri_version>[0-9]{1,9})|@(?P<uri_alias>[^/@]+))"
    r"|(?P<name>[^/@:]+)[@:](?P<selector>[^/@:]+))$"
)


def parse_model_ref(ref: str) -> tuple[str, int | None, str | None]:
    """(name, version, alias) from any accepted form of a model reference.

    ``name@3``, ``name@champion``, MLflow's ``models:/name/3`` and ``models:/name@champion``;
    ``name:3`` too, the form MLflow users type first. The name and alias are checked
    before any storage read; a version is 1 to 9 ASCII digits."""
    match = _MODEL_REF.match(ref)
    if match is None:
        raise ValidationFailed(f"'{ref[:80]}' is not a model reference: use {MODEL_REF_FORMS}.")
    name = match["uri_name"] or match["name"]
    selector = match["uri_version"] or match["uri_alias"] or match["selector"]
    check_name(name, "model")
    if re.fullmatch(r"[0-9]{1,9}", selector, flags=re.ASCII) and int(selector) > 0:
        return name, int(selector), None
    if re.fullmatch(ALIAS_PATTERN, selector) is None:
        raise ValidationFailed(
            f"'{ref[:80]}': '{selector[:40]}' is neither a version (1 to 9 digits) nor an"
            f" alias. Accepted forms: {MODEL_REF_FORMS}."
        )
    return name, None, selector


def _signed_content(info: VersionInfo) -> bytes:
    return signed_content(
        info.name,
        info.version,
        info.format,
        info.task,
        [f.model_dump() for f in info.features] if info.features is not None else None,
        [f.model_dump() for f in info.files],
    )


def row_key(version: int) -> str:
    return f"{version:010d}"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class NewFile:
    """A file of a new version: the model itself, or an artifact kept beside it."""

    filename: str
    data: bytes


@dataclass(frozen=True)
class PlacedFile:
    """A file the platform itself places in a version (serving export, partition models)."""

    relative_path: str
    data: bytes
    role: str  # "serving" or "partition"
    format: str | None = None


def partition_files(info: VersionInfo, manifest: dict[str, Any]) -> list[StoredFile]:
    """The files a partitioned version's manifest lists, with their recorded hashes."""
    prefix = f"{CONTAINER}/{info.name}/{info.version}/"
    return [
        StoredFile(
            path=prefix + relative,
            sha256=f["sha256"],
            size_bytes=f["size_bytes"],
            role="partition",
            format=f.get("format"),
        )
        for relative, f in sorted(manifest.get("files", {}).items())
    ]


def find_file(
    info: VersionInfo, relative: str, manifest: dict[str, Any] | None = None
) -> StoredFile | None:
    """A file of the version by its path relative to the version folder."""
    path = f"{CONTAINER}/{info.name}/{info.version}/{relative}"
    found = next((f for f in info.files if f.path == path), None)
    if found is None and manifest is not None:
        recorded = manifest.get("files", {}).get(relative)
        if recorded:
            found = StoredFile(
                path=path,
                sha256=recorded["sha256"],
                size_bytes=recorded["size_bytes"],
                role="partition",
                format=recorded.get("format"),
            )
    return found


class ModelRegistry:
    def __init__(
        self,
        models: TableClient,
        aliases: TableClient,
        container: ContainerClient,
        signer: ModelSigner | None = None,
    ) -> None:
        self.models = models
        self.aliases = aliases
        self.container = container
        self.signer = signer or ModelSigner(None)

    def signature_status(self, info: VersionInfo) -> SignatureStatus:
        """Whether the version's row is what the platform signed (see ``signing``)."""
        return self.signer.check(_signed_content(info), info.signature)

    def check_signature(self, info: VersionInfo) -> None:
        """409 unless the version may be loaded: validly signed, or unsigned where allowed."""
        status = self.signature_status(info)
        if not self.signer.acceptable(status):
            raise ModelSignatureInvalid(
                f"{info.name} version {info.version} is {status.replace('_', ' ')}"
                + (
                    " (signed with a key this platform does not hold)"
                    if status == "unknown_key"
                    else ""
                )
                + ": it will not be loaded.",
                extra={"signature": status},
            )

    # --- writing a version --------------------------------------------------------------
    def register(
        self,
        name: str,
        model_format: str,
        model: NewFile,
        artifacts: Iterable[NewFile],
        meta: VersionMetadata,
        created_by: str,
        placed: Iterable[PlacedFile] = (),
    ) -> VersionInfo:
        check_name(name, "model")
        artifacts = list(artifacts)
        if len(artifacts) > MAX_ARTIFACTS:  # the version row lists every file: keep it small
            raise PayloadTooLarge(
                f"{len(artifacts)} artifact files; at most {MAX_ARTIFACTS} per version.",
                code="TOO_MANY_ARTIFACTS",
            )
        names = [a.filename for a in artifacts]
        for filename in names:
            # fullmatch: ``$`` alone would let a trailing newline through ("evil.txt\n").
            if not ARTIFACT_NAME.fullmatch(filename) or ".." in filename:
                raise ValidationFailed(f"Invalid artifact file name '{filename[:80]}'.")
        if len(set(names)) != len(names):
            raise ValidationFailed("Artifact file names must be unique.")
        version = self._reserve_version(name)
        prefix = f"{name}/{version}/"
        ext = {"onnx": "onnx", "skops": "skops", "partitioned": "json"}.get(model_format, "pkl")
        planned = [(f"{prefix}model.{ext}", model.data, "model", model_format)]
        planned += [(prefix + p.relative_path, p.data, p.role, p.format) for p in placed]
        planned += [
            (f"{prefix}artifacts/{a.filename}", a.data, "artifact", None) for a in artifacts
        ]
        try:
            with ThreadPoolExecutor(max_workers=8, thread_name_prefix="upload") as pool:
                files = list(pool.map(lambda item: self._upload(*item), planned))
            # Partition files are described (with their hashes) by the manifest, which is
            # itself hashed here: the row stays small whatever the number of partitions.
            files = [f for f in files if f.role != "partition"]
            info = self._create_row(name, version, model_format, files, meta, created_by)
        except Exception:
            self._delete_prefix(prefix)  # best effort; the sweeper catches what this misses
            raise
        if meta.alias:
            self.set_alias(name, meta.alias, version, created_by)
            info.aliases = sorted({*info.aliases, meta.alias})
        return info

    def _upload(self, blob_name: str, data: bytes, role: str, fmt: str | None) -> StoredFile:
        digest = _sha256(data)
        self.container.upload_blob(blob_name, data, overwrite=True, metadata={"sha256": digest})
        return StoredFile(
            path=f"{CONTAINER}/{blob_name}",
            sha256=digest,
            size_bytes=len(data),
            role=role,
            format=fmt,
        )

    def _reserve_version(self, name: str) -> int:
        for attempt in range(200):
            try:
                meta = self.models.get_entity(name, META)
            except ResourceNotFoundError:
                now = iso(utcnow())
                try:
                    self.models.create_entity(
                        {
                            "PartitionKey": name,
                            "RowKey": META,
                            "next_version": 2,
                            "latest_version": 0,
                            "description": "",
                            "tags": "{}",
                            "created_at": now,
                            "updated_at": now,
                            "deleted": False,
                        }
                    )
                    return 1
                except ResourceExistsError:
                    continue
            version = int(meta["next_version"])
            try:
                self.models.update_entity(
                    {"PartitionKey": name, "RowKey": META, "next_version": version + 1},
                    mode=UpdateMode.MERGE,
                    etag=meta.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
                return version
            except ResourceModifiedError:
                time.sleep(random.uniform(0, 0.01 * min(attempt + 1, 10)))  # noqa: S311
        raise ServiceUnavailable("The registry is too busy to assign a version; retry.")

    def _create_row(
        self,
        name: str,
        version: int,
        model_format: str,
        files: list[StoredFile],
        meta: VersionMetadata,
        created_by: str,
    ) -> VersionInfo:
        now = utcnow()
        features = [f.model_dump() for f in meta.features] if meta.features is not None else None
        content = signed_content(
            name, version, model_format, meta.task, features, [f.model_dump() for f in files]
        )
        row = {
            "PartitionKey": name,
            "RowKey": row_key(version),
            "version": version,
            "status": "ready",
            "format": model_format,
            "files": json.dumps([f.model_dump() for f in files]),
            "created_at": iso(now),
            "created_by": created_by,
            "description": meta.description,
            "metrics": json.dumps(meta.metrics),
            "params": json.dumps(meta.params),
            "tags": json.dumps(meta.tags),
            "features": json.dumps([f.model_dump() for f in meta.features])
            if meta.features is not None
            else "",
            "task": meta.task or "",
            "lineage": meta.lineage.model_dump_json() if meta.lineage else "",
            "decision": "",
            "promotion": meta.promotion.model_dump_json() if meta.promotion else "",
            "signature": self.signer.sign(content) or "",
        }
        for _ in range(200):
            current = self.models.get_entity(name, META)
            update = {
                "PartitionKey": name,
                "RowKey": META,
                "latest_version": max(int(current.get("latest_version") or 0), version),
                "updated_at": iso(now),
                "deleted": False,
            }
            if not current.get("description") and meta.description:
                update["description"] = meta.description
            try:
                self.models.submit_transaction(
                    [
                        ("create", row),
                        (
                            "update",
                            update,
                            {
                                "mode": UpdateMode.MERGE,
                                "etag": current.metadata["etag"],
                                "match_condition": MatchConditions.IfNotModified,
                            },
                        ),
                    ]
                )
                return self._info(row, aliases=[])
            except TableTransactionError as exc:
                if exc.status_code != 412:
                    raise
                time.sleep(random.uniform(0, 0.02))  # noqa: S311
        raise ServiceUnavailable("The registry is too busy to record the version; retry.")

    # --- reading ------------------------------------------------------------------------
    def _info(self, row: dict[str, Any], aliases: list[str]) -> VersionInfo:
        files = [StoredFile(**f) for f in json.loads(row["files"])]
        model_file = next(f for f in files if f.role == "model")
        return VersionInfo(
            name=row["PartitionKey"],
            version=int(row["version"]),
            model_path=model_file.path,
            artifact_paths=[f.path for f in files if f.role == "artifact"],
            sha256=model_file.sha256,
            size_bytes=model_file.size_bytes,
            format=row["format"],
            status=row["status"],
            created_at=parse_iso(row["created_at"]),
            created_by=row["created_by"],
            description=row.get("description", ""),
            metrics=json.loads(row.get("metrics") or "{}"),
            params=json.loads(row.get("params") or "{}"),
            tags=json.loads(row.get("tags") or "{}"),
            features=json.loads(row["features"]) if row.get("features") else None,
            task=row.get("task") or None,
            aliases=aliases,
            lineage=Lineage.model_validate_json(row["lineage"]) if row.get("lineage") else None,
            decision=Decision.model_validate_json(row["decision"]) if row.get("decision") else None,
            promotion=Promotion.model_validate_json(row["promotion"])
            if row.get("promotion")
            else None,
            signature=row.get("signature") or None,
            files=files,
        )

    def _meta(self, name: str) -> dict[str, Any]:
        check_name(name, "model")
        try:
            meta = self.models.get_entity(name, META)
        except ResourceNotFoundError:
            meta = None
        if meta is None or meta.get("deleted") or not int(meta.get("latest_version") or 0):
            raise NotFound(f"No model named '{name}'.", code="MODEL_NOT_FOUND")
        return meta

    def _row(self, name: str, version: int) -> dict[str, Any]:
        check_name(name, "model")
        try:
            row = self.models.get_entity(name, row_key(version))
        except ResourceNotFoundError:
            row = None
        if row is None or row.get("status") != "ready":
            raise NotFound(f"Model '{name}' has no version {version}.", code="VERSION_NOT_FOUND")
        return row

    def alias_map(self, name: str) -> dict[str, int]:
        return {
            e["RowKey"]: int(e["version"])
            for e in self.aliases.query_entities("PartitionKey eq @n", parameters={"n": name})
        }

    def get_version(self, name: str, version: int) -> VersionInfo:
        row = self._row(name, version)
        aliases = sorted(a for a, v in self.alias_map(name).items() if v == version)
        return self._info(row, aliases)

    def _summary(self, meta: dict[str, Any], aliases: dict[str, int]) -> ModelSummary:
        return ModelSummary(
            name=meta["PartitionKey"],
            description=meta.get("description", ""),
            latest_version=int(meta.get("latest_version") or 0) or None,
            aliases=aliases,
            tags=json.loads(meta.get("tags") or "{}"),
            updated_at=parse_iso(meta["updated_at"]),
        )

    def list_models(
        self, limit: int, continuation: str | None
    ) -> tuple[list[ModelSummary], str | None]:
        metas, token = page(
            self.models,
            "RowKey eq @meta and deleted eq false and latest_version gt 0",
            limit,
            continuation,
            lambda e: e,
            parameters={"meta": META},
        )
        aliases = self._alias_maps([m["PartitionKey"] for m in metas])
        return [self._summary(m, aliases[m["PartitionKey"]]) for m in metas], token

    def _alias_maps(self, names: list[str]) -> dict[str, dict[str, int]]:
        """The aliases of many models in one range query (a page of models is a range of
        names: the registry table is ordered by name), not one query per model."""
        found: dict[str, dict[str, int]] = {n: {} for n in names}
        if not names:
            return found
        for e in self.aliases.query_entities(
            "PartitionKey ge @lo and PartitionKey le @hi",
            parameters={"lo": min(names), "hi": max(names)},
        ):
            if e["PartitionKey"] in found:
                found[e["PartitionKey"]][e["RowKey"]] = int(e["version"])
        return found

    def get_model(self, name: str) -> ModelDetail:
        meta = self._meta(name)
        aliases = self.alias_map(name)
        by_version: dict[int, list[str]] = {}
        for alias, v in aliases.items():
            by_version.setdefault(v, []).append(alias)
        versions = [
            VersionBrief(
                version=int(e["version"]),
                created_at=parse_iso(e["created_at"]),
                format=e["format"],
                status=e["status"],
                metrics=json.loads(e.get("metrics") or "{}"),
                aliases=sorted(by_version.get(int(e["version"]), [])),
            )
            for e in self.models.query_entities(
                "PartitionKey eq @n and RowKey lt @meta", parameters={"n": name, "meta": META}
            )
            if e.get("status") == "ready"
        ]
        return ModelDetail(**self._summary(meta, aliases).model_dump(), versions=versions)

    def list_versions(
        self, name: str, query: VersionQuery
    ) -> tuple[list[VersionSummary], str | None]:
        """One page of a model's versions, oldest first; filters by alias, tag or status."""
        self._meta(name)  # 404 for an unknown model
        aliases = self.alias_map(name)
        by_version: dict[int, list[str]] = {}
        for alias, v in aliases.items():
            by_version.setdefault(v, []).append(alias)
        query_filter = "PartitionKey eq @n and RowKey lt @meta and status eq @status"
        parameters: dict[str, Any] = {"n": name, "meta": META, "status": query.status}
        if query.alias is not None:
            if query.alias not in aliases:
                return [], None
            query_filter += " and RowKey eq @rk"
            parameters["rk"] = row_key(aliases[query.alias])
        rows, token = page(
            self.models,
            query_filter,
            query.limit,
            query.continuation_token,
            lambda e: e,
            parameters=parameters,
        )
        items = []
        for row in rows:
            tags = json.loads(row.get("tags") or "{}")
            if query.tag is not None:
                key, has_value, value = query.tag.partition("=")
                if key not in tags or (has_value and tags[key] != value):
                    continue
            version = int(row["version"])
            items.append(
                VersionSummary(
                    version=version,
                    created_at=parse_iso(row["created_at"]),
                    created_by=row.get("created_by", ""),
                    format=row["format"],
                    status=row["status"],
                    metrics=json.loads(row.get("metrics") or "{}"),
                    aliases=sorted(by_version.get(version, [])),
                    description=row.get("description", ""),
                    tags=tags,
                    task=row.get("task") or None,
                    promotion=json.loads(row["promotion"]) if row.get("promotion") else None,
                )
            )
        return items, token

    def resolve(self, name: str, version: int | None = None, alias: str | None = None) -> int:
        """A version number from an explicit version, an alias, or champion-else-latest."""
        if version is not None:
            self._row(name, version)
            return version
        if alias is not None:
            return self.get_alias(name, alias).version
        meta = self._meta(name)
        champion = self.alias_map(name).get("champion")
        return champion if champion is not None else int(meta["latest_version"])

    def read_file(self, stored: StoredFile) -> bytes:
        blob_name = stored.path.split("/", 1)[1]
        try:
            return self.container.download_blob(blob_name).readall()
        except ResourceNotFoundError:
            return b""

    # --- integrity ------------------------------------------------------------------------
    def verify(self, name: str, version: int) -> VerifyResult:
        info = self.get_version(name, version)
        stored_files = list(info.files)
        if info.format == "partitioned":
            manifest_file = next(f for f in info.files if f.role == "model")
            try:
                manifest = json.loads(self.read_file(manifest_file))
                stored_files += partition_files(info, manifest)
            except ValueError:
                pass  # a corrupt manifest already fails its own check below
        checks = []
        for stored in stored_files:
            blob_name = stored.path.split("/", 1)[1]
            try:
                data = self.container.download_blob(blob_name).readall()
            except ResourceNotFoundError:
                data = None
            actual = _sha256(data) if data is not None else None
            ok = actual == stored.sha256 and data is not None and len(data) == stored.size_bytes
            status = "valid" if ok else ("missing" if data is None else "corrupt")
            checks.append(
                FileCheck(
                    path=stored.path,
                    status=status,
                    expected_sha256=stored.sha256,
                    actual_sha256=actual,
                    expected_size=stored.size_bytes,
                    actual_size=None if data is None else len(data),
                )
            )
        signature = self.signature_status(info)
        files_ok = all(c.status == "valid" for c in checks)
        overall = "valid" if files_ok and self.signer.acceptable(signature) else "corrupt"
        return VerifyResult(
            name=name, version=version, status=overall, signature=signature, files=checks
        )

    # --- aliases ---------------------------------------------------------------------------
    def get_alias(self, name: str, alias: str) -> AliasInfo:
        check_name(name, "model")
        check_alias(alias)
        try:
            e = self.aliases.get_entity(name, alias)
        except ResourceNotFoundError:
            raise NotFound(
                f"Model '{name}' has no alias '{alias}'.", code="ALIAS_NOT_FOUND"
            ) from None
        return AliasInfo(
            name=name,
            alias=alias,
            version=int(e["version"]),
            previous_version=int(e["previous_version"]) if e.get("previous_version") else None,
            updated_at=parse_iso(e["updated_at"]),
            updated_by=e["updated_by"],
        )

    def set_alias(self, name: str, alias: str, version: int, by: str) -> AliasInfo:
        """Move an alias; ``previous_version`` is exactly the version this move replaced
        (read and write under one ETag, so concurrent moves form one chain)."""
        check_alias(alias)
        self._row(name, version)
        for attempt in range(200):
            try:
                current = self.aliases.get_entity(name, alias)
            except ResourceNotFoundError:
                current = None
            previous = int(current["version"]) if current else None
            now = utcnow()
            entity = {
                "PartitionKey": name,
                "RowKey": alias,
                "version": version,
                "previous_version": previous or 0,
                "updated_at": iso(now),
                "updated_by": by,
            }
            try:
                if current is None:
                    self.aliases.create_entity(entity)
                else:
                    self.aliases.update_entity(
                        entity,
                        mode=UpdateMode.REPLACE,
                        etag=current.metadata["etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
            except (ResourceModifiedError, ResourceExistsError):
                time.sleep(random.uniform(0, 0.005 * min(attempt + 1, 20)))  # noqa: S311
                continue
            return AliasInfo(
                name=name,
                alias=alias,
                version=version,
                previous_version=previous,
                updated_at=now,
                updated_by=by,
            )
        raise ServiceUnavailable("The alias kept changing under this move; retry.")

    def delete_alias(self, name: str, alias: str) -> None:
        self.get_alias(name, alias)
        self.aliases.delete_entity(name, alias)

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

    # --- deletion ---------------------------------------------------------------------------
    def delete_version(self, name: str, version: int, force: bool = False) -> None:
        """Resumable: a version marked ``deleting`` is finished by a retry or the sweeper."""
        check_name(name, "model")
        try:
            row = self.models.get_entity(name, row_key(version))
        except ResourceNotFoundError:
            raise NotFound(
                f"Model '{name}' has no version {version}.", code="VERSION_NOT_FOUND"
            ) from None
        pointing = sorted(a for a, v in self.alias_map(name).items() if v == version)
        if pointing and not force:
            raise Conflict(
                f"Aliases {', '.join(pointing)} point at version {version}; move them first"
                " or pass ?force=true.",
                code="VERSION_ALIASED",
                extra={"aliases": pointing},
            )
        if row.get("status") != "deleting":
            self.models.update_entity(
                {"PartitionKey": name, "RowKey": row_key(version), "status": "deleting"},
                mode=UpdateMode.MERGE,
            )
        for alias in pointing:
            self.aliases.delete_entity(name, alias)
        self._delete_prefix(f"{name}/{version}/")
        self.models.delete_entity(name, row_key(version))
        self._refresh_latest(name)

    def delete_model(self, name: str) -> None:
        meta = self._meta(name)
        for e in self.models.query_entities(
            "PartitionKey eq @n and RowKey lt @meta", parameters={"n": name, "meta": META}
        ):
            self.delete_version(name, int(e["version"]), force=True)
        # The counter survives as a tombstone: a re-created model never reuses a version.
        self.models.update_entity(
            {
                "PartitionKey": name,
                "RowKey": META,
                "deleted": True,
                "latest_version": 0,
                "updated_at": iso(utcnow()),
            },
            mode=UpdateMode.MERGE,
            etag=self.models.get_entity(name, META).metadata["etag"] if meta else None,
            match_condition=MatchConditions.IfNotModified,
        )

    def _refresh_latest(self, name: str) -> None:
        versions = [
            int(e["version"])
            for e in self.models.query_entities(
                "PartitionKey eq @n and RowKey lt @meta and status eq 'ready'",
                parameters={"n": name, "meta": META},
                select=["version"],
            )
        ]
        self.models.update_entity(
            {
                "PartitionKey": name,
                "RowKey": META,
                "latest_version": max(versions, default=0),
                "updated_at": iso(utcnow()),
            },
            mode=UpdateMode.MERGE,
        )

    def _delete_prefix(self, prefix: str) -> None:
        for blob in self.container.list_blobs(name_starts_with=prefix):
            with contextlib.suppress(ResourceNotFoundError):
                self.container.delete_blob(blob.name)

    def _delete_orphan(self, path: str) -> None:
        try:
            self.container.delete_blob(path)
        except ResourceNotFoundError:
            # Only staged blocks, no committed blob to delete: commit an empty block list
            # (a 0-byte blob, dropping the blocks) and delete that.
            self.container.get_blob_client(path).commit_block_list([])
            with contextlib.suppress(ResourceNotFoundError):
                self.container.delete_blob(path)

    def sweep_orphans(self, older_than: timedelta = timedelta(hours=1)) -> int:
        """Delete blobs with no version row (a crashed upload: committed, 0-byte or only
        staged blocks) and finish pending deletions."""
        cutoff = utcnow() - older_than
        removed = 0
        known: dict[tuple[str, int], str | None] = {}
        for blob in self.container.list_blobs(include=["uncommittedblobs"]):
            parts = blob.name.split("/")
            if len(parts) < 3 or not parts[1].isdigit():
                continue
            key = (parts[0], int(parts[1]))
            if key not in known:
                try:
                    known[key] = self.models.get_entity(key[0], row_key(key[1])).get("status")
                except ResourceNotFoundError:
                    known[key] = None
            last_modified: datetime = blob.last_modified
            if known[key] is None and last_modified < cutoff:
                self._delete_orphan(blob.name)
                removed += 1
        for (name, version), status in known.items():
            if status == "deleting":
                self.delete_version(name, version, force=True)
        return removed
