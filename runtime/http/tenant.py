"""Who a request is for: the Worker names the API key's public id in a header; the queues share by it.

The header is trusted only because every route but the health checks needs the origin token (the
Worker's, or an operator's); a request without it belongs to the tenant `default`.
"""

import re

from fastapi import Request

from runtime.errors import ApiError

HEADER = "X-Steadytext-Tenant"
DEFAULT_TENANT = "default"
# Key ids are short printable tokens; anything else is a caller's mistake, not a new tenant.
_TENANT_ID = re.compile(r"^[\x21-\x7e]{1,128}$")


def tenant_of(request: Request) -> str:
    value = request.headers.get(HEADER, "").strip()
    if not value:
        return DEFAULT_TENANT
    if not _TENANT_ID.match(value):
        raise ApiError(
            "invalid_request",
            "must be 1 to 128 printable ASCII characters without spaces",
            field=HEADER,
        )
    return value
