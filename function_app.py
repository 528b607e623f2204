"""The Function App: composes one blueprint per area, nothing else."""

import azure.functions as func

from functions import (
    api_keys,
    audit,
    auth,
    dashboard,
    datasets,
    docs,
    entities,
    heartbeat,
    inference,
    model_tools,
    models,
    monitoring,
    predict,
    reports,
    roles,
    scoring,
    training,
    users,
)

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

for area in (
    heartbeat,
    docs,
    auth,
    users,
    roles,
    api_keys,
    audit,
    models,
    model_tools,
    datasets,
    training,
    predict,
    entities,
    scoring,
    inference,
    monitoring,
    reports,
    dashboard,
):
    app.register_functions(area.bp)
