"""The Function App: composes one blueprint per area, nothing else."""

import azure.functions as func

from functions import (
    api_keys,
    audit,
    auth,
    dashboard,
    datasets,
    docs,
    heartbeat,
    inference,
    models,
    monitoring,
    predict,
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
    datasets,
    training,
    predict,
    scoring,
    inference,
    monitoring,
    dashboard,
):
    app.register_functions(area.bp)
