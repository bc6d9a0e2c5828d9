"""One module per partner; `partner_for` picks the module for a connector's `type`."""
from __future__ import annotations

from typing import Any, Callable

from sinks.http.partners.base import Partner


def partner_types() -> dict[str, type[Partner]]:
    from sinks.http.partners.amplitude import Amplitude
    from sinks.http.partners.heap import Heap
    from sinks.http.partners.http import CurrentsHttp
    from sinks.http.partners.mixpanel import Mixpanel
    from sinks.http.partners.mparticle import MParticle
    from sinks.http.partners.segment import Segment

    return {p.type: p for p in (CurrentsHttp, Heap, Amplitude, Mixpanel, Segment, MParticle)}


def partner_for(connector: Any, resolve: Callable[[str], str] = lambda ref: ref) -> Partner:
    return partner_types()[connector.type](connector, resolve)
