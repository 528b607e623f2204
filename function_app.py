"""The Function App: composes one blueprint per area, nothing else."""

import azure.functions as func

from functions import (
    api_keys,
    audit,
    auth,
    datasets,
    docs,
    heartbeat,
    inference,
    large_uploads,
    models,
    monitoring,
    operations,
    predict,
    roles,
    scoring,
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
    audit,
    models,
    datasets,
    large_uploads,
    training,
    predict,
    scoring,
    inference,
    monitoring,
    operations,
):
    app.register_functions(area.bp)
