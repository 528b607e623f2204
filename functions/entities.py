"""Prediction by entity id: an index of each entity's latest features, then predict."""

import azure.functions as func

from shared.http import Call, Routes, empty_response, json_response
from shared.names import check_name
from shared.prediction.schemas import (
    EntityIndexInfo,
    EntityIndexRequest,
    EntityPredictRequest,
    EntityPredictResponse,
    EntityQuery,
)

bp = func.Blueprint()
routes = Routes(bp, tag="predict")


@routes.put(
    "models/{name}/entities",
    auth="train",  # it reads a dataset: the dataset scope, like training
    body=EntityIndexRequest,
    response=EntityIndexInfo,
    status=201,
    errors=(404,),
)
def build_index(call: Call) -> func.HttpResponse:
    """(Re)build the model's entity index from a feature dataset and its key column."""
    name = check_name(call.param("name"), "model")
    call.services.model_registry.get_model(name)  # 404 for an unknown model
    body = call.json(EntityIndexRequest)
    return json_response(
        call.services.entity_index.build(name, body, call.user.username), status=201
    )


@routes.get(
    "models/{name}/entities",
    auth="models:read",
    response=EntityIndexInfo,
    errors=(404,),
    audited=False,
)
def get_index(call: Call) -> func.HttpResponse:
    """What the entity index was built from, and how many entities it holds."""
    return json_response(call.services.entity_index.info(check_name(call.param("name"), "model")))


@routes.delete("models/{name}/entities", auth="train", status=204, errors=(404,))
def delete_index(call: Call) -> func.HttpResponse:
    """Drop the model's entity index."""
    call.services.entity_index.delete(check_name(call.param("name"), "model"))
    return empty_response(204)


@routes.get(
    "predict/{model}/entities/{id}",
    auth="predict",
    rate_group="predict",
    query=EntityQuery,
    response=EntityPredictResponse,
    errors=(404,),
    audited=False,
)
def predict_entity(call: Call) -> func.HttpResponse:
    """Predict one entity from its latest indexed features (404 naming an unknown id)."""
    q = call.query(EntityQuery)
    body = EntityPredictRequest(ids=[call.param("id")], **q.model_dump())
    return _answer(call, body)


@routes.post(
    "predict/{model}/entities",
    auth="predict",
    rate_group="predict",
    body=EntityPredictRequest,
    response=EntityPredictResponse,
    errors=(404,),
    audited=False,
)
def predict_entities(call: Call) -> func.HttpResponse:
    """Predict many entities by id (at most 1,000); 404 naming the unknown ones."""
    return _answer(call, call.json(EntityPredictRequest))


def _answer(call: Call, body: EntityPredictRequest) -> func.HttpResponse:
    name = check_name(call.param("model"), "model")
    result = call.services.entity_predictions.predict(name, body, call.request_id)
    return json_response(
        result.model_dump(exclude_none=True),
        headers={"X-Model-Version": ",".join(str(v) for v in result.versions)},
    )
