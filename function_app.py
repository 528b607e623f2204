"""The Function App: builds the service container, hands it to the edge, registers blueprints.

Nothing is built here but the container itself (its services are built on first use),
so indexing the app and serving /heartbeat stay light.
"""

import atexit

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
from shared.container import Services
from shared.http import use_services
from shared.settings import get_settings

services = Services(get_settings())
services.bootstrap()
use_services(services)
# The worker process ends without a hook of its own: flush logs and counters on the way out.
atexit.register(services.close)

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
