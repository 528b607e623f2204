"""Datasets: CSV or Parquet training data in Blob ``datasets/{name}/...``.

Modules: ``schemas`` (the API models and value types), ``dtypes`` (portable column
types), ``formats`` (reading CSV/Parquet: profiles, the one CSV chunk reader),
``blobs`` (range reads pinned to an ETag) and ``store`` (the DatasetStore).

A dataset is every ``.csv`` / ``.parquet`` blob (any file names, any depth, zero-byte
files skipped) under the prefix ``{name}/`` of the ``datasets`` container. Blob is the
source of truth because Azure Data Factory's Copy activity drops and replaces files there
without calling the API; the Table ``Datasets`` (PartitionKey ``datasets``, RowKey = name)
only caches the computed metadata, keyed by a fingerprint of the blobs' names and ETags,
and is recomputed whenever that fingerprint changes.

Metadata of a dataset made of several files: ``columns`` come from the first file (blob
name order), each dtype widened over the files that have the column (so every file can be
read with it), ``row_count`` and ``size_bytes`` are summed, ``format`` is ``mixed`` when CSV
and Parquet files meet, and ``sha256`` is the SHA-256 of the concatenated per-file SHA-256
hex digests in blob name order. A single-file dataset's ``sha256`` is the file's own.

``uploaded_at`` is the newest ``Last-Modified`` of its blobs, so an upload and a later
rediscovery of the same blobs describe the dataset identically.

pandas and pyarrow are imported inside the functions that need them: importing this
module (and so ``function_app``) must not load the ML stack.
"""
