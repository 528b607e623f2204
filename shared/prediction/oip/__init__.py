"""The Open Inference Protocol (KServe V2 / Triton HTTP/REST) over the platform's models.

Modules: ``schemas`` (V2 bodies), ``errors`` (V2 error rules), ``tensors`` (tensors in
and out) and ``service`` (metadata, readiness, inference).

Tensors in, tensors out, so Triton, KServe and Seldon clients work unchanged. The rules:

* Inputs: one tensor per feature (named after it, shape ``[n]`` or ``[n, 1]``) or one
  2-D tensor ``[n, k]`` (any name) whose columns follow the feature order of the
  version's metadata. ``data`` is flat (row-major) or nested exactly like ``shape``.
  Values are typed like ``POST /predict``: number features take INT*/UINT*/FP*, bool
  features BOOL (or numeric 0/1, so an all-numeric 2-D tensor can carry them), string
  features BYTES; ``null`` is a missing value, as in ``/predict``. An input that is not
  a feature is refused (a typo must not pass silently: V2 clients send exactly the
  inputs the metadata lists).
* Outputs: classification ``label`` (``[n]``; INT64, BYTES, BOOL or FP64 after the
  classes) + ``probabilities`` (FP32 ``[n, n_classes]``, the class order in its
  ``parameters.classes`` as JSON text, since V2 parameter values are scalars);
  regression ``predictions`` (FP64 ``[n]``); anomaly ``label`` (INT64, -1 outlier /
  1 inlier) + ``scores`` (FP32 ``[n]``). Data is flat, row-major.
* An ONNX version without a feature schema (one ``[n, k]`` input and no names) is served
  raw, as Triton does: the request's tensors feed the session's inputs by name and
  every tensor output comes back under its ONNX name.
* Errors keep the platform's problem+json, with V2's status (400 for every bad request,
  also body-schema failures that are 422 elsewhere) and an ``error`` member holding the
  message, which is where tritonclient and KServe clients look for it.

The hot path stays free of pandas and scikit-learn; numpy and the engine are imported
when the first request arrives, not when the Function App starts.
"""

from shared.prediction.oip.errors import (
    InvalidTensor,
    ModelNotReady,
    ServerNotReady,
    refuse_binary,
    v2_errors,
)
from shared.prediction.oip.schemas import (
    V2InferParameters,
    V2InferRequest,
    V2InferResponse,
    V2ModelMetadata,
    V2ModelReady,
    V2RequestInput,
    V2RequestOutput,
    V2ResponseOutput,
    V2ServerLive,
    V2ServerMetadata,
    V2ServerReady,
    V2TensorMetadata,
)
from shared.prediction.oip.service import InferenceService, server_metadata, server_ready
from shared.prediction.oip.tensors import (
    outputs_of,
    raw_feed,
    select_outputs,
    tensor_values,
    to_columns,
)

__all__ = [
    "InferenceService",
    "InvalidTensor",
    "ModelNotReady",
    "ServerNotReady",
    "V2InferParameters",
    "V2InferRequest",
    "V2InferResponse",
    "V2ModelMetadata",
    "V2ModelReady",
    "V2RequestInput",
    "V2RequestOutput",
    "V2ResponseOutput",
    "V2ServerLive",
    "V2ServerMetadata",
    "V2ServerReady",
    "V2TensorMetadata",
    "outputs_of",
    "raw_feed",
    "refuse_binary",
    "select_outputs",
    "server_metadata",
    "server_ready",
    "tensor_values",
    "to_columns",
    "v2_errors",
]
