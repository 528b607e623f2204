"""The HTTP edge: the only part of shared/ that imports azure.functions."""

from shared.http.endpoint import Call, Routes
from shared.http.responses import empty_response, json_response

__all__ = ["Call", "Routes", "empty_response", "json_response"]
