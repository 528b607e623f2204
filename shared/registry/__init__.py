"""The model registry: versions in Blob, metadata in Table, aliases, integrity."""
