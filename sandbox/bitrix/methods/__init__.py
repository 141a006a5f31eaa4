"""The Bitrix24 REST methods the sandbox portal answers, one module per scope.

Importing this package is the registration: each scope module's `@method(...)` puts its
handlers into `sandbox.bitrix.rest.METHODS` (lower-cased, as Bitrix24 method names are
case-insensitive), which the REST engine looks names up in. A new scope is a new module
here plus one line below.
"""

from __future__ import annotations

from sandbox.bitrix.methods import (
    app,
    bizproc,
    calllist,
    crm,
    crmitem,
    disk,
    events,
    im,
    placement,
    telephony,
    timeman,
    users,
)
from sandbox.bitrix.rest import METHODS

__all__ = ["METHODS", "app", "crm", "disk", "events", "im", "placement", "telephony", "users"]
__all__ += ["bizproc", "calllist", "crmitem", "timeman"]
