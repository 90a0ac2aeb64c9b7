"""``jupyter-di target salesforce``: rows Salesforce rejects within ``max_rejected_rows`` are said on
stderr and the target exits 3 (not 0), as a pipeline run does; the rows it could write are there."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.salesforce_server import SalesforceServer


def messages(n: int) -> bytes:
    schema = {"properties": {"ext_id": {"type": "string"}, "name": {"type": "string"}}}
    lines = [{"type": "SCHEMA", "stream": "Account", "schema": schema, "key_properties": ["ext_id"]}]
    lines += [{"type": "RECORD", "stream": "Account", "record": {"ext_id": f"E{i:05d}", "name": f"Account {i}"}} for i in range(1, n + 1)]
    lines.append({"type": "STATE", "value": {"bookmarks": {"Account": {"seen": n}}}})
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def run_target(config: dict[str, Any], tmp_path: Path, data: bytes) -> subprocess.CompletedProcess:
    path = tmp_path / "salesforce.json"
    path.write_text(json.dumps(config))
    return subprocess.run(
        [sys.executable, "-m", "jupyter_di.cli", "target", "salesforce", "--config", str(path)],
        input=data,
        capture_output=True,
        timeout=300,
    )


def test_rows_rejected_within_the_allowance_make_the_target_exit_3(sf: SalesforceServer, sf_config: dict[str, Any], tmp_path: Path) -> None:
    sf.org.reject("Account", "Name", "Account 3", "FIELD_CUSTOM_VALIDATION_EXCEPTION", "no threes")
    config = {**sf_config, "streams": {"Account": {"column_mapping": {"ext_id": "Ext_Id__c"}, "max_rejected_rows": 1}}}
    done = run_target(config, tmp_path, messages(5))
    err = done.stderr.decode()
    assert done.returncode == 3, err
    assert "stream 'Account'" in err and "FIELD_CUSTOM_VALIDATION_EXCEPTION: no threes" in err
    assert {r["Ext_Id__c"]: r["Name"] for r in sf.rows("Account")} == {f"E{i:05d}": f"Account {i}" for i in (1, 2, 4, 5)}
    for secret in ("client-secret-xyz", "s3cret-Pa55", "TOKEN123"):
        assert secret not in err + done.stdout.decode()

    sf.org.rules.clear()  # nothing rejected: a clean exit, every row there, the state printed
    done = run_target(config, tmp_path, messages(5))
    assert done.returncode == 0, done.stderr.decode()
    assert len(sf.rows("Account")) == 5
    assert json.loads(done.stdout.decode().splitlines()[-1]) == {"bookmarks": {"Account": {"seen": 5}}}
