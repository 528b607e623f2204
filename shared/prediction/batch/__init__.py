"""Batch scoring: datasets in Blob ``scoring/`` scored into ``scored/``, in chunks, on queues.

Modules: ``schemas`` (the request), ``service`` (the queue job: plan, chunks, fan-in),
``jobs`` (job/target/chunk rows), ``versions`` (a registered version's partitions as
Servables), ``engine`` (a batch of rows -> an output table), ``features`` (typing Arrow
columns), ``files`` (bounded reading and writing), ``blobs`` (blob streams) and
``onnx_blocks`` (tree ensembles regrouped for batch throughput).
"""
