"""The ``stripe`` connector: Stripe's objects as streams, with updates and deletes from its Events API.

``streams.py`` declares each object (list endpoint, event types, typed shape), ``types.py`` turns
Stripe's JSON into Arrow of that shape, ``connection.py`` holds the config fields and pages lists
through the shared HTTP client (retries, masked key), ``read.py`` is the ``Source``: a listing first,
then the events of each stream's types.
"""

from __future__ import annotations

from ..base import ConnectorSpec
from .connection import CONFIG
from .read import StripeSource

SPEC = ConnectorSpec(
    name="stripe",
    title="Stripe",
    config_schema=CONFIG,
    source=StripeSource,
    description="Stripe objects (customers, charges, invoices ...) with typed schemas; INCREMENTAL reads follow the Events API.",
)

__all__ = ["SPEC", "StripeSource"]
