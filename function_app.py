"""The Function App: composes one blueprint per area, nothing else."""

import azure.functions as func

from functions import (
    api_keys,
    audit,
    auth,
    datasets,
    docs,
    entities,
    heartbeat,
    inference,
    jobs,
    model_tools,
    models,
    monitoring,
    predict,
    rate_limits,
    reports,
    roles,
    scoring,
    scoring_data,
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
    rate_limits,
    audit,
    models,
    model_tools,
    datasets,
    training,
    predict,
    entities,
    scoring,
    scoring_data,
    inference,
    monitoring,
    jobs,
    reports,
):
    app.register_functions(area.bp)
