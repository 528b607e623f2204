"""Rate limits: an admin sees and resets the budget of an API key or a user."""

import azure.functions as func

from shared.http import Call, Routes, empty_response, json_response
from shared.identity.principal import ADMIN
from shared.ratelimit import GroupUsage, RateLimitUsage, check_subject

bp = func.Blueprint()
routes = Routes(bp, tag="users")


@routes.get(
    "rate-limits/{subject}", auth=ADMIN, response=RateLimitUsage, errors=(422,), audited=False
)
def get_usage(call: Call) -> func.HttpResponse:
    """Budget used in the current window per limited route group (key:<id> or user:<id>)."""
    subject = check_subject(call.param("subject"))
    groups = [GroupUsage(**g) for g in call.services.rate_limiter.usage(subject)]
    return json_response(RateLimitUsage(subject=subject, groups=groups))


@routes.delete("rate-limits/{subject}", auth=ADMIN, status=204, errors=(422,))
def reset_usage(call: Call) -> func.HttpResponse:
    """Give the subject its whole budget back for the current windows."""
    call.services.rate_limiter.reset(check_subject(call.param("subject")))
    return empty_response(204)
