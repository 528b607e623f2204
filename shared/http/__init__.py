"""The HTTP edge: the only part of shared/ that imports azure.functions.

Request ids, the guard, problem+json, the audit hook and the route registry live here;
handlers in ``functions/`` reach the service container through ``call.services``.
"""

from shared.http.endpoint import Call, Routes, current_services, use_services
from shared.http.responses import empty_response, encoded_json_response, json_response

__all__ = [
    "Call",
    "Routes",
    "current_services",
    "empty_response",
    "encoded_json_response",
    "json_response",
    "use_services",
]
