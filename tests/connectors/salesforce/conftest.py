"""A fresh Salesforce stand-in (tests/support/salesforce_server.py) per test, and configs for it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.salesforce_server import SalesforceServer


@pytest.fixture
def sf() -> Iterator[SalesforceServer]:
    with SalesforceServer(job_delay=0.01) as server:
        yield server


@pytest.fixture
def sf_config(sf: SalesforceServer) -> dict[str, Any]:
    """A destination config logging in with the OAuth username-password flow (so a session can be refreshed)."""
    return {
        "instance_url": sf.url,
        "login_url": sf.url,
        "verify": sf.ca_path,
        "client_id": "3MVG9-client",
        "client_secret": "client-secret-xyz",
        "username": "etl@example.com",
        "password": "s3cret-Pa55",
        "security_token": "TOKEN123",
    }
