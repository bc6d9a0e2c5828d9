"""One module per partner. A partner module declares its `Partner` (endpoint, auth, limits, encoding) and its
connector model (a `HttpConnectorBase` with `type: Literal[...]` and `partner_class`); `pipeline.config` finds the
models in this package, so adding a partner touches one new file."""
from __future__ import annotations

from typing import Callable

from sinks.http.partners.base import HttpConnectorBase, Partner


def partner_for(connector: HttpConnectorBase, resolve: Callable[[str], str] = lambda ref: ref) -> Partner:
    return connector.partner(resolve)
