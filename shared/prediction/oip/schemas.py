"""The Open Inference Protocol bodies (also the OpenAPI schemas of the /v2 routes)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.names import ALIAS_PATTERN

Datatype = Literal[
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]
ParameterValue = str | int | float | bool


class V2InferParameters(BaseModel):
    """Request parameters; V2 allows any, these two choose the model that answers."""

    model_config = ConfigDict(extra="allow")
    partition: str | int | None = Field(default=None, description="For partitioned models.")
    alias: str | None = Field(
        default=None,
        pattern=ALIAS_PATTERN,
        description="Without a version in the URL: the alias to use (default champion).",
    )


class V2RequestInput(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    shape: list[int] = Field(min_length=1, max_length=8)
    datatype: Datatype
    parameters: dict[str, ParameterValue] | None = None
    data: list[Any] = Field(description="Flat (row-major) or nested like shape.")


class V2RequestOutput(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    parameters: dict[str, ParameterValue] | None = None


class V2InferRequest(BaseModel):
    id: str | None = Field(default=None, max_length=200)
    parameters: V2InferParameters | None = None
    inputs: list[V2RequestInput] = Field(min_length=1, max_length=5000)
    outputs: list[V2RequestOutput] | None = Field(
        default=None, max_length=100, description="The outputs to return (default: all)."
    )


class V2ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, ParameterValue] | None = None
    data: list[Any]


class V2InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: str
    parameters: dict[str, ParameterValue] | None = None
    outputs: list[V2ResponseOutput]


class V2TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int] = Field(description="-1 for a dimension of any size.")


class V2ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[V2TensorMetadata]
    outputs: list[V2TensorMetadata]


class V2ModelReady(BaseModel):
    name: str
    ready: bool


class V2ServerLive(BaseModel):
    live: bool


class V2ServerReady(BaseModel):
    ready: bool


class V2ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]
