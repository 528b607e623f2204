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
import json
import random
import re
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, TableTransactionError, UpdateMode
from azure.storage.blob import ContainerClient

from shared.errors import NotFound, PayloadTooLarge, ServiceUnavailable, ValidationFailed
from shared.names import check_alias, check_name
from shared.registry.browsing import RegistryBrowsing
from shared.registry.deletion import RegistryDeletion
from shared.registry.files import (
    PACK,
    NewFile,
    PlacedFile,
)
from shared.registry.integrity import RegistryIntegrity
from shared.registry.review import RegistryReview
from shared.registry.rows import META, row_key
from shared.registry.schemas import (
    AliasInfo,
    Decision,
    Lineage,
    Promotion,
    StoredFile,
    VersionInfo,
    VersionMetadata,
)
from shared.registry.signing import ModelSigner, signed_content
from shared.registry.writing import PackUploads, RegistryWriting, VersionUploads
from shared.tables import iso, parse_iso, utcnow

ARTIFACT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,127}$")
MAX_ARTIFACTS = 100


class ModelRegistry(
    RegistryBrowsing, RegistryWriting, RegistryIntegrity, RegistryDeletion, RegistryReview
):
    """Versions in Table Storage, their files in Blob (listings, writes, integrity, deletion,
    review: mixins)."""

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

    # --- writing a version --------------------------------------------------------------
    def register(
        self,
        name: str,
        model_format: str,
        model: NewFile | Callable[[dict[str, StoredFile]], NewFile],
        artifacts: Iterable[NewFile],
        meta: VersionMetadata,
        created_by: str,
        placed: Iterable[PlacedFile] = (),
        *,
        reserved: int | None = None,
        stored: dict[str, StoredFile] | None = None,
    ) -> VersionInfo:
        """Reserve a version, upload its files, then create its row (see the module doc).

        ``placed`` may be a generator: it is consumed as it uploads, with at most
        ``UPLOADS_IN_FLIGHT`` files held, so a version of 1,000 partitions never sits whole
        in memory. ``model`` may then be a function of the placed files' records (their
        hashes: a partitioned version's manifest), called once they are all stored.

        ``reserved``: a version number taken earlier with :meth:`reserve_version`, whose
        folder already holds the files ``stored`` describes (a training job's units write
        their partitions there). A failure then leaves the folder to its owner, who may
        retry; registering a reserved version that already has its row returns that row.
        """
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
        if reserved is not None:
            with contextlib.suppress(NotFound):
                return self.get_version(name, reserved)  # a retried fan-in: registered
        version = reserved if reserved is not None else self._reserve_version(name)
        prefix = f"{name}/{version}/"
        ext = {"onnx": "onnx", "skops": "skops", "partitioned": "json"}.get(model_format, "pkl")
        try:
            stored = {**(stored or {}), **self._upload_placed(prefix, placed)}
            with ThreadPoolExecutor(max_workers=8, thread_name_prefix="upload") as pool:
                if callable(model):
                    model = model(stored)
                planned = [(f"{prefix}model.{ext}", model.data, "model", model_format)]
                planned += [
                    (f"{prefix}artifacts/{a.filename}", a.data, "artifact", None) for a in artifacts
                ]
                model_file, *artifact_files = pool.map(lambda item: self._upload(*item), planned)
            # Partition files are described (with their hashes) by the manifest, which is
            # itself hashed here: the row stays small whatever the number of partitions.
            files = [model_file, *(f for f in stored.values() if f.role != "partition")]
            files += artifact_files
            info = self._create_row(name, version, model_format, files, meta, created_by)
        except Exception:
            if reserved is None:  # best effort; the sweeper catches what this misses
                self._delete_prefix(prefix)
            raise
        if meta.alias:
            self.set_alias(name, meta.alias, version, created_by)
            info.aliases = sorted({*info.aliases, meta.alias})
        return info

    def reserve_version(self, name: str) -> int:
        """Take the model's next version number now, for files written before the version
        is registered (:meth:`version_uploads`, then ``register(reserved=...)``). Until its
        row exists the version is invisible; :meth:`discard_reserved` drops its files."""
        check_name(name, "model")
        return self._reserve_version(name)

    def version_uploads(
        self, name: str, version: int, pack: str | None = None
    ) -> VersionUploads | PackUploads:
        """Upload files into a reserved version's folder as they are produced: each to its
        own blob, or all into the segments of the pack ``pack`` (``packs/u000003``)."""
        if pack is not None:
            if not PACK.fullmatch(pack):
                raise ValueError(f"not a pack name: {pack!r}")
            return PackUploads(self.container, f"{name}/{version}/", pack)
        return self._version_uploads(f"{name}/{version}/")

    def discard_reserved(self, name: str, version: int, under: str = "") -> int:
        """Delete files of a reserved version that was not registered (``under``: only
        that sub-folder). A registered version is never touched: its row is checked first."""
        try:
            self.models.get_entity(name, row_key(version))
            return 0
        except ResourceNotFoundError:
            return self._delete_prefix(f"{name}/{version}/{under}")

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
        """The file's bytes; empty when its blob is gone (the hash check then refuses it)."""
        data = self._download(stored)
        return b"" if data is None else data

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
