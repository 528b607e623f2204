"""The V2 inference service: model metadata, readiness and inference, and server status."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import AzureError

from shared import metrics
from shared.errors import AppError, NotFound, ValidationFailed
from shared.prediction.oip.errors import InvalidTensor, ModelNotReady, ServerNotReady
from shared.prediction.oip.schemas import (
    V2InferParameters,
    V2InferRequest,
    V2InferResponse,
    V2ModelMetadata,
    V2ModelReady,
    V2ResponseOutput,
    V2ServerMetadata,
    V2ServerReady,
    V2TensorMetadata,
)
from shared.prediction.oip.tensors import (
    label_datatype,
    numpy_datatype,
    onnx_tensors,
    outputs_of,
    raw_feed,
    select_outputs,
    to_columns,
)

if TYPE_CHECKING:
    from shared.prediction.engine import Predictor
    from shared.prediction.runtime import Servable
    from shared.registry.loader import LoadedModel
    from shared.registry.store import ModelRegistry
    from shared.secrets import SecretStore
    from shared.settings import Settings
    from shared.storage import Storage

SERVER_NAME = "ml-platform"
# Feature kinds (shared.prediction.runtime.kind) as V2 datatypes, for the metadata.
_KIND_DATATYPE = {"number": "FP32", "string": "BYTES", "bool": "BOOL"}
_PLATFORMS = {
    "onnx": "onnxruntime_onnx",
    "skops": "sklearn_skops",
    "pickle": "sklearn_pickle",
    "partitioned": "ml-platform_partitioned",
}


class InferenceService:
    """V2 model metadata, readiness and inference on top of the platform's predictor."""

    def __init__(self, predictor: Predictor, registry: ModelRegistry) -> None:
        self.predictor = predictor
        self.loader = predictor.loader
        self.registry = registry

    def infer(
        self, name: str, request: V2InferRequest, version: int | None, request_id: str
    ) -> V2InferResponse:
        """Without a version: parameters.alias, else champion-else-latest (as /predict)."""
        params = request.parameters or V2InferParameters()
        # The URL's version wins over an alias in the parameters: it is the more specific.
        alias = params.alias if version is None else None
        loaded = self.loader.load(name, version=version, alias=alias)
        partition = None if params.partition is None else str(params.partition)
        if loaded.format == "partitioned" and partition is None:
            raise InvalidTensor(
                f"{name} has one model per '{loaded.model.get('partition_by')}':"
                " send parameters.partition.",
                ["parameters", "partition"],
                code="PARTITION_REQUIRED",
            )
        servable = self._servable(loaded, partition)
        if servable is None:
            outputs = self._infer_raw(loaded, request)
            partition = None
            rows = outputs[0].shape[0] if outputs and outputs[0].shape else 0
        else:
            cols = to_columns(request.inputs, servable.features, self.predictor.max_records)
            result = servable.run(cols, with_probabilities=True).as_lists()
            rows = cols.n_rows
            outputs = select_outputs(
                outputs_of(result, servable.task, servable.classes), request.outputs
            )
            if loaded.format != "partitioned":
                partition = None  # meaningless for a single model, as in /predict
        # Counted as /predict counts its records: /metrics shows every prediction made.
        metrics.count_predictions(name, loaded.version, rows)
        return V2InferResponse(
            model_name=name,
            model_version=str(loaded.version),
            id=request.id if request.id is not None else request_id,
            parameters={"partition": partition} if partition is not None else None,
            outputs=outputs,
        )

    def _servable(self, loaded: LoadedModel, partition: str | None) -> Servable | None:
        """The engine's servable; None for an ONNX version without a feature schema."""
        try:
            servable, _ = self.predictor.servable(
                loaded.name, version=loaded.version, partition=partition
            )
        except ValidationFailed:
            # For an ONNX version the engine's only refusal is the missing schema (the
            # name was checked by the load above): serve it raw, as its message promises.
            if loaded.format == "onnx":
                return None
            raise
        return servable

    def _infer_raw(self, loaded: LoadedModel, request: V2InferRequest) -> list[V2ResponseOutput]:
        from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument

        session = loaded.model
        feed = raw_feed(session, request.inputs, self.predictor.max_records)
        offered = [t.name for t in onnx_tensors(session.get_outputs())]
        names = offered
        if request.outputs:
            stubs = [V2ResponseOutput(name=n, shape=[], datatype="BYTES", data=[]) for n in offered]
            names = [o.name for o in select_outputs(stubs, request.outputs)]
        try:
            arrays = session.run(names, feed)
        except InvalidArgument as exc:  # what the session refuses came from the client
            raise InvalidTensor(
                f"The model refused the input: {str(exc)[:300]}", ["inputs"]
            ) from None
        return [
            V2ResponseOutput(
                name=n,
                shape=list(a.shape),
                datatype=numpy_datatype(a),
                data=[str(v) for v in a.ravel()] if a.dtype.kind in "OSU" else a.ravel().tolist(),
            )
            for n, a in zip(names, arrays, strict=True)
        ]

    def metadata(self, name: str, version: int | None) -> V2ModelMetadata:
        """Inputs in feature order, outputs by task, every ready version."""
        resolved = self.loader.resolve(name, version=version)
        info = self.loader.info(name, resolved)
        versions = sorted(v.version for v in self.registry.get_model(name).versions)
        from shared.registry.loader import serving_file

        fmt = serving_file(info).format or info.format
        features: list[dict[str, str]] = [f.model_dump() for f in info.features or []]
        task, classes = info.task, info.params.get("classes")
        inputs: list[V2TensorMetadata] | None = None
        outputs: list[V2TensorMetadata] | None = None
        if info.format != "partitioned":  # a partitioned version needs a partition to load
            loaded = self.loader.load(name, version=resolved)
            try:
                servable = self._servable(loaded, None)
            except ValidationFailed:  # no schema and not ONNX: infer refuses it; declare none
                servable, inputs = None, []
            if servable is not None:
                features, task = servable.features, servable.task
                classes = servable.classes or classes
            elif inputs is None:
                inputs = onnx_tensors(loaded.model.get_inputs())
                outputs = onnx_tensors(loaded.model.get_outputs())
        if inputs is None:
            from shared.prediction.runtime import kind

            inputs = [
                V2TensorMetadata(
                    name=f["name"],
                    datatype=_KIND_DATATYPE[kind(f.get("dtype", "number"))],
                    shape=[-1, 1],
                )
                for f in features
            ]
        if outputs is None:
            outputs = _declared_outputs(task, classes if isinstance(classes, list) else None)
        return V2ModelMetadata(
            name=name,
            versions=[str(v) for v in versions],
            platform=_PLATFORMS.get(fmt, fmt),
            inputs=inputs,
            outputs=outputs,
        )

    def ready(self, name: str, version: int | None) -> V2ModelReady:
        """Loads (and so warms) the version; 503 when it exists but cannot be loaded.

        A partitioned version is ready when its manifest loads: its partitions load on
        first use, as there may be thousands."""
        try:
            self.loader.load(name, version=version)
        except (NotFound, ValidationFailed, AzureError):
            raise  # unknown model, bad name, storage down: their own answers
        except Exception as exc:  # noqa: BLE001 - anything else means "cannot serve it"
            cause = exc.code if isinstance(exc, AppError) else type(exc).__name__
            raise ModelNotReady(
                f"{name} cannot be loaded ({cause}).", extra={"cause": cause}
            ) from None
        return V2ModelReady(name=name, ready=True)


def _declared_outputs(task: str | None, classes: list[Any] | None) -> list[V2TensorMetadata]:
    """What infer answers for this task (an unknown task declares nothing)."""
    if task == "anomaly":
        return [
            V2TensorMetadata(name="label", datatype="INT64", shape=[-1]),
            V2TensorMetadata(name="scores", datatype="FP32", shape=[-1]),
        ]
    if task == "classification":
        if classes and all(isinstance(c, bool) for c in classes):
            datatype = "BOOL"
        else:
            datatype = label_datatype(classes) if classes else "BYTES"
        return [
            V2TensorMetadata(name="label", datatype=datatype, shape=[-1]),
            V2TensorMetadata(
                name="probabilities", datatype="FP32", shape=[-1, len(classes) if classes else -1]
            ),
        ]
    if task == "regression":
        return [V2TensorMetadata(name="predictions", datatype="FP64", shape=[-1])]
    return []


# --- server ---------------------------------------------------------------------------------
def server_metadata(version: str) -> V2ServerMetadata:
    return V2ServerMetadata(name=SERVER_NAME, version=version, extensions=[])


def server_ready(
    settings: Settings, storage: Callable[[], Storage], secrets: Callable[[], SecretStore]
) -> V2ServerReady:
    """Ready when storage (and Key Vault, if used) answer, as GET /health judges it.

    The services come as factories: building them is part of what may fail."""
    from shared.health import check_health

    try:
        report = check_health(settings, storage(), secrets())
    except Exception as exc:  # noqa: BLE001 - misconfiguration is also "not ready"
        raise ServerNotReady(
            f"Storage is not reachable ({type(exc).__name__}).", ["storage"]
        ) from None
    if report.failing:
        raise ServerNotReady(f"Not ready: {', '.join(report.failing)} unavailable.", report.failing)
    return V2ServerReady(ready=True)
