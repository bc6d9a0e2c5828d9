"""Heap: its Currents webhook speaks the custom-export protocol (behaviour §5.5), to the URL and optional bearer
token Heap gives; only the connector type differs from `http`."""
from __future__ import annotations

from typing import ClassVar

from sinks.http.partners.http import CurrentsHttp


class Heap(CurrentsHttp):
    type: ClassVar[str] = "heap"
