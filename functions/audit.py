"""The audit trail: GET /audit (admin) and GET /audit/me."""

import azure.functions as func

from shared.audit import AuditPage, AuditQuery
from shared.http import Call, Routes, json_response
from shared.identity.principal import ADMIN, SIGNED_IN

bp = func.Blueprint()
routes = Routes(bp, tag="audit")


@routes.get("audit", auth=ADMIN, query=AuditQuery, response=AuditPage, audited=False)
def audit(call: Call) -> func.HttpResponse:
    """Mutating and refused requests, newest first; filter by user and time."""
    items, token = call.services.audit_log.query(call.query(AuditQuery))
    return json_response(AuditPage(items=items, continuation_token=token))


@routes.get("audit/me", auth=SIGNED_IN, query=AuditQuery, response=AuditPage, audited=False)
def audit_me(call: Call) -> func.HttpResponse:
    """Your own mutating and refused requests."""
    q = call.query(AuditQuery).model_copy(update={"user": None})
    items, token = call.services.audit_log.query(q, user_id=call.user.user_id)
    return json_response(AuditPage(items=items, continuation_token=token))
