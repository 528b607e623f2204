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
    jobs,
    large_uploads,
    model_tools,
    models,
    monitoring,
    operations,
    predict,
    rate_limits,
    reports,
    roles,
    scoring,
    scoring_data,
    training,
    users,
)
from shared import telemetry

# Exports to Application Insights only when APPLICATIONINSIGHTS_CONNECTION_STRING is set.
telemetry.start_if_configured()

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
    large_uploads,
    training,
    predict,
    entities,
    scoring,
    scoring_data,
    inference,
    monitoring,
    jobs,
    reports,
    dashboard,
    operations,
):
    app.register_functions(area.bp)
