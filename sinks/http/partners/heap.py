"""Heap: its Currents webhook speaks the custom-export protocol (behaviour §5.5), to the URL and optional bearer
token Heap gives; only the connector type differs from `http`."""
from __future__ import annotations

from typing import ClassVar, Literal, Optional, Type

from pydantic import Field

from core.config import Secret
from sinks.http.partners.base import HttpConnectorBase, Partner
from sinks.http.partners.http import CurrentsHttp


class Heap(CurrentsHttp):
    type: ClassVar[str] = "heap"


class HeapConnector(HttpConnectorBase):
    """Heap's Currents webhook: the custom-export format to the URL Heap gives you."""

    type: Literal["heap"]
    partner_class: ClassVar[Type[Partner]] = Heap
    endpoint: str = Field(pattern=r"^https?://")
    token: Optional[Secret] = None
