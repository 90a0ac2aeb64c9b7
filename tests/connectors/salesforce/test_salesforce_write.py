"""The Salesforce destination against the local stand-in: what lands in the org, what is refused and why.

Every test reads the org back (``sf.rows``: the stand-in's records, the same data SOQL returns) and,
where it matters, the requests that reached the server, so "nothing was written" is checked, not
assumed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import warnings
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from jupyter_di.connectors.base import FULL_TABLE, INCREMENTAL, Chunk, StreamSettings, WriteRequest
from jupyter_di.connectors.config_check import check_config
from jupyter_di.connectors.registry import get as get_spec
from jupyter_di.connectors.salesforce.write import SalesforceDestination
from jupyter_di.errors import ConfigError, ConnectionFailed, DIError, SchemaMismatch
from tests.support.salesforce_server import SalesforceServer, jwt_key_pair

UTC = dt.timezone.utc


def accounts(n: int, start: int = 0, *, name: str = "Account {i}") -> pa.RecordBatch:
    ids = range(start, start + n)
    return pa.record_batch(
        {
            "ext_id__c": [f"A{i:06d}" for i in ids],
            "name": [name.format(i=i) for i in ids],
            "employees": pa.array([i % 500 for i in ids], pa.int32()),
            "score": pa.array([Decimal(i % 1000) / 100 for i in ids], pa.decimal128(6, 2)),
            "active": [i % 2 == 0 for i in ids],
            "since": pa.array([dt.date(2020, 1, 1) + dt.timedelta(days=i % 900) for i in ids], pa.date32()),
            "seen": pa.array(
                [dt.datetime(2024, 3, 1, 12, 30, 15, 250000, tzinfo=UTC) + dt.timedelta(minutes=i) for i in ids], pa.timestamp("us", "UTC")
            ),
        }
    )


MAPPING = {"employees": "NumberOfEmployees", "score": "Score__c", "active": "Active__c", "since": "Since__c", "seen": "Last_Seen__c"}


def settings(**kw: Any) -> StreamSettings:
    base: dict[str, Any] = {
        "stream": "accounts",
        "destination_table": "Account",
        "replication_method": INCREMENTAL,
        "unique_constraints": ["ext_id__c"],
    }
    base.update(kw)
    return StreamSettings(**base)


def write(
    config: dict[str, Any],
    batches: list[pa.RecordBatch],
    s: StreamSettings | None = None,
    *,
    mapping: dict | None = None,
    **stream_opts: Any,
) -> tuple[SalesforceDestination, list[tuple[int, Any]], list[str]]:
    """Write ``batches`` as one stream; (destination, commits, warnings)."""
    opts = {"column_mapping": MAPPING if mapping is None else mapping, **stream_opts}
    config = check_config(get_spec("salesforce"), {**config, "streams": {"accounts": opts}})
    dest = SalesforceDestination(config)
    commits: list[tuple[int, Any]] = []
    chunks = [Chunk(b, {"bookmark": {"n": i}}) for i, b in enumerate(batches)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dest.write(WriteRequest(settings=s or settings(), schema=batches[0].schema), chunks, lambda n, st: commits.append((n, st)))
    return dest, commits, [str(w.message) for w in caught]


def by_ext(sf: SalesforceServer) -> dict[str, dict[str, Any]]:
    return {r["Ext_Id__c"]: r for r in sf.rows("Account")}


def writes(sf: SalesforceServer) -> int:
    return sum(1 for m, p in sf.requests if m in ("POST", "PATCH", "PUT", "DELETE") and "/services/data/" in p)


def test_upsert_twice_creates_then_updates(sf: SalesforceServer, sf_config: dict[str, Any]) -> None:
    dest, commits, _ = write(sf_config, [accounts(150), accounts(100, 150)])
    assert dest.last_outcome is not None and dest.last_outcome.created == 250 and dest.last_outcome.jobs == 0
    assert commits == [(250, {"bookmark": {"n": 1}})]
    rows = by_ext(sf)
    assert len(rows) == 250
    first = rows["A000007"]
    assert first["Name"] == "Account 7" and first["NumberOfEmployees"] == 7 and first["Score__c"] == 0.07
    assert first["Active__c"] is False and first["Since__c"] == "2020-01-08"
    assert first["Last_Seen__c"] == "2024-03-01T12:37:15.250+0000"
    ids = {k: r["Id"] for k, r in rows.items()}

    dest, commits, _ = write(sf_config, [accounts(250, name="Renamed {i}")])
    assert dest.last_outcome is not None and dest.last_outcome.created == 0 and dest.last_outcome.written == 250
    rows = by_ext(sf)
    assert len(rows) == 250 and rows["A000007"]["Name"] == "Renamed 7"
    assert {k: r["Id"] for k, r in rows.items()} == ids  # the same records, updated
    assert sf.count("PATCH", "/composite/sobjects/Account/Ext_Id__c") == 4  # 200 + 50 per run


def test_nulls_clear_fields_and_last_row_per_key_wins(sf: SalesforceServer, sf_config: dict[str, Any]) -> None:
    write(sf_config, [accounts(3)])
    batch = pa.record_batch(
        {"ext_id__c": ["A000001", "A000001", "A000002"], "name": ["old", "new", "two"], "score": pa.array([1.0, None, None])}
    )
    write(sf_config, [batch], mapping={"score": "Score__c"})
    rows = by_ext(sf)
    assert rows["A000001"]["Name"] == "new" and rows["A000001"]["Score__c"] is None
    assert rows["A000002"]["Score__c"] is None and rows["A000002"]["NumberOfEmployees"] == 2  # columns not sent are kept


def test_ignore_inserts_only_new_external_ids(sf: SalesforceServer, sf_config: dict[str, Any]) -> None:
    write(sf_config, [accounts(5)])
    write(sf_config, [accounts(10, name="Second {i}")], settings(unique_conflict_method="IGNORE"))
    rows = by_ext(sf)
    assert len(rows) == 10
    assert rows["A000004"]["Name"] == "Account 4" and rows["A000005"]["Name"] == "Second 5"
    assert sf.count("GET", "/query") == 1


def test_without_key_rows_are_inserted(sf: SalesforceServer, sf_config: dict[str, Any]) -> None:
    plain = accounts(3).drop_columns(["ext_id__c"])
    write(sf_config, [plain], settings(unique_constraints=[]))
    write(sf_config, [plain], settings(unique_constraints=[]))
    assert sorted(r["Name"] for r in sf.rows("Account")) == ["Account 0", "Account 0", "Account 1", "Account 1", "Account 2", "Account 2"]
    with pytest.raises(DIError, match=r"'row 2': DUPLICATE_VALUE: duplicate value found: Code__c"):  # keyless rows are named by number
        write(sf_config, [pa.record_batch({"name": ["a", "b"], "code": ["C1", "C1"]})], settings(unique_constraints=[]), mapping={})


def test_bulk_load_of_10000_rows_in_parts(sf: SalesforceServer, sf_config: dict[str, Any]) -> None:
    sf.max_upload_bytes = 1_000_000  # base64-measured, as Salesforce counts its 150 MB
    batches = [accounts(2500, i * 2500) for i in range(4)]
    dest, commits, found = write({**sf_config, "bulk_upload_mb": 0.7}, batches)
    outcome = dest.last_outcome
    assert outcome is not None and outcome.jobs >= 2 and outcome.written == 10_000 and not found
    assert commits == [(10_000, {"bookmark": {"n": 3}})]
    rows = by_ext(sf)
    assert len(rows) == 10_000
    assert rows["A009999"]["Name"] == "Account 9999" and rows["A009999"]["Score__c"] == 9.99
    assert rows["A000001"]["Active__c"] is False and rows["A000002"]["Active__c"] is True
    assert sf.count("POST", "/composite/sobjects") == 0 and sf.count("PUT", "/batches") == outcome.jobs
    # again: updated, not duplicated
    write({**sf_config, "bulk_upload_mb": 0.7}, [accounts(10_000, name="Bulk {i}")])
    rows = by_ext(sf)
    assert len(rows) == 10_000 and rows["A004321"]["Name"] == "Bulk 4321"


@pytest.mark.parametrize("bulk", [False, True], ids=["collections", "bulk"])
def test_rejected_rows_are_reported_with_their_keys(sf: SalesforceServer, sf_config: dict[str, Any], tmp_path: Path, bulk: bool) -> None:
    sf.org.reject("Account", "Name", "Account 3", "FIELD_CUSTOM_VALIDATION_EXCEPTION", "Name must not be Account 3")
    sf.org.reject("Account", "Name", "Account 8", "FIELD_CUSTOM_VALIDATION_EXCEPTION", "Name must not be Account 8")
    config = {**sf_config, "bulk_threshold": 5 if bulk else 2000}
    rejected = tmp_path / "rejected.csv"
    with pytest.raises(DIError) as failed:
        write(config, [accounts(10)], rejected_rows_file=str(rejected))
    text = str(failed.value)
    assert "rejected 2 of 10 rows of Account" in text and "8 rows were written; the bookmark did not move" in text
    assert "'A000003': FIELD_CUSTOM_VALIDATION_EXCEPTION: Name must not be Account 3" in text
    assert "'A000008': FIELD_CUSTOM_VALIDATION_EXCEPTION" in text
    assert len(sf.rows("Account")) == 8
    saved = rejected.read_text().splitlines()
    assert saved[0] == "stream,key,error_code,message,fields" and len(saved) == 3
    assert any(line.startswith("accounts,A000003,FIELD_CUSTOM_VALIDATION_EXCEPTION,Name must not be Account 3") for line in saved)

    dest, commits, found = write(config, [accounts(10)], max_rejected_rows=2)
    assert commits == [(8, {"bookmark": {"n": 0}})]  # within the allowance: the bookmark moves
    assert len(found) == 1 and "'A000003': FIELD_CUSTOM_VALIDATION_EXCEPTION" in found[0] and "within max_rejected_rows 2" in found[0]


def test_unknown_and_read_only_fields_fail_before_anything_is_written(sf: SalesforceServer, sf_config: dict[str, Any]) -> None:
    batch = pa.record_batch({"ext_id__c": ["A1"], "name": ["x"], "employes": [3], "Formula_Total__c": [1.0], "createddate": ["2024-01-01"]})
    with pytest.raises(SchemaMismatch) as failed:
        write(sf_config, [batch], mapping={"employes": "NumberOfEmployes"})
    text = str(failed.value)
    assert "'employes' → NumberOfEmployes (closest: NumberOfEmployees)" in text
    assert (
        "read-only field(s) of Account" in text
        and "'Formula_Total__c' → Formula_Total__c" in text
        and "'createddate' → CreatedDate" in text
    )
    assert "Nothing was written" in text and writes(sf) == 0


def test_values_that_do_not_fit_fail_before_anything_is_written(sf: SalesforceServer, sf_config: dict[str, Any]) -> None:
    good = accounts(300)
    bad = pa.record_batch(
        {
            "ext_id__c": ["B1", "B2", "B3"],
            "name": ["x" * 256, "ok", None],
            "employees": pa.array([1, 2, 3], pa.int32()),
            "score": pa.array([Decimal("1000.00"), Decimal("1"), Decimal("1")], pa.decimal128(6, 2)),
            "active": [True, True, True],
            "since": pa.array([dt.date(2020, 1, 1)] * 3, pa.date32()),
            "seen": pa.array([None] * 3, pa.timestamp("us", "UTC")),
        }
    )
    with pytest.raises(SchemaMismatch) as failed:
        write(sf_config, [good, bad])
    text = str(failed.value)
    assert "'name' → Name: 1 value(s) longer than 255 characters (rows 'B1')" in text
    assert "'name' → Name: 1 value(s) missing (the field is required) (rows 'B3')" in text
    assert "'score' → Score__c: 1 value(s) beyond 3 digits before the point (rows 'B1')" in text
    assert writes(sf) == 0 and sf.rows("Account") == []


def test_key_must_be_an_external_id(sf: SalesforceServer, sf_config: dict[str, Any]) -> None:
    batch = pa.record_batch({"name": ["x"], "phone": ["1"]})
    with pytest.raises(
        SchemaMismatch, match=r"maps to Phone, which is not an external ID field of Account \(its external IDs: Ext_Id__c, Legacy_Key__c"
    ):
        write(sf_config, [batch], settings(unique_constraints=["phone"]), mapping={})


def test_full_table_delete_missing(sf: SalesforceServer, sf_config: dict[str, Any]) -> None:
    write(sf_config, [accounts(6)])
    sf.org.write("Account", {"Name": "made by hand"}, op="insert", ext=None, from_csv=False, seen=set())
    write(sf_config, [accounts(4)], settings(replication_method=FULL_TABLE), delete_missing=True)
    names = sorted(r["Name"] for r in sf.rows("Account"))
    assert names == ["Account 0", "Account 1", "Account 2", "Account 3", "made by hand"]  # records without an external ID stay


def test_token_expiry_mid_run_logs_in_again_once(sf: SalesforceServer, sf_config: dict[str, Any]) -> None:
    expire_after = {"n": 0}

    def batches():
        yield accounts(100)
        sf.expire_tokens()  # the session ends while the stream is being read
        expire_after["n"] += 1
        yield accounts(100, 100)

    config = check_config(get_spec("salesforce"), {**sf_config, "streams": {"accounts": {"column_mapping": MAPPING}}})
    dest = SalesforceDestination(config)
    commits: list = []
    dest.write(WriteRequest(settings=settings(), schema=accounts(1).schema), (Chunk(b) for b in batches()), lambda n, s: commits.append(n))
    assert commits == [200] and len(sf.rows("Account")) == 200
    assert sf.count("POST", "/services/oauth2/token") == 2


def test_expired_access_token_is_one_clear_error(sf: SalesforceServer) -> None:
    config = {"instance_url": sf.url, "verify": sf.ca_path, "access_token": sf.token}
    sf.expire_tokens()
    with pytest.raises(ConnectionFailed) as failed:
        write(config, [accounts(1)])
    text = str(failed.value)
    assert "session expired or is invalid" in text and "fresh access_token" in text and sf.token not in text


def test_jwt_bearer_flow(sf: SalesforceServer) -> None:
    pem, public = jwt_key_pair()
    sf.add_jwt_app("3MVG9-jwt-app", public)
    config = {"login_url": sf.url, "verify": sf.ca_path, "client_id": "3MVG9-jwt-app", "username": "etl@example.com", "private_key": pem}
    write(config, [accounts(3)])
    assert len(sf.rows("Account")) == 3
    other, _ = jwt_key_pair()
    with pytest.raises(ConnectionFailed) as failed:
        write({**config, "private_key": other}, [accounts(3)])
    text = str(failed.value)
    assert "invalid_grant: invalid assertion" in text and "BEGIN" not in text and other[40:80] not in text


def test_wrong_password_message_keeps_secrets_out(sf: SalesforceServer, sf_config: dict[str, Any]) -> None:
    config = {**sf_config, "password": "wrong-Pa55w0rd", "client_secret": "client-secret-xyz"}
    with pytest.raises(ConnectionFailed) as failed:
        write(config, [accounts(1)])
    text = str(failed.value)
    assert "invalid_grant: authentication failure" in text and "security_token" in text
    for secret in ("wrong-Pa55w0rd", "client-secret-xyz", "TOKEN123"):
        assert secret not in text
    with pytest.raises(ConnectionFailed, match="invalid_client_id"):
        write({**sf_config, "client_id": "nope"}, [accounts(1)])


def test_request_limit_is_named(sf: SalesforceServer, sf_config: dict[str, Any]) -> None:
    sf.fail_next(1)
    with pytest.raises(ConnectionFailed, match="API request limit for the org is used up"):
        write(sf_config, [accounts(1)])


def test_tls_is_verified_and_ca_bundle_variables_honoured(
    sf: SalesforceServer, sf_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = dict(sf_config)
    del config["verify"]
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with pytest.raises(ConnectionFailed, match="TLS certificate of 127.0.0.1:.* is not trusted"):
        write(config, [accounts(1)])
    monkeypatch.setenv("SSL_CERT_FILE", sf.ca_path)
    write(config, [accounts(1)])
    monkeypatch.setenv("SSL_CERT_FILE", "/nonexistent.pem")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", sf.ca_path)  # read first, as requests does
    write(config, [accounts(2)])
    assert len(sf.rows("Account")) == 2


def test_config_checks(sf: SalesforceServer) -> None:
    spec = get_spec("salesforce")
    with pytest.raises(ConfigError, match="did you mean 'column_mapping'"):
        check_config(spec, {"access_token": "x", "instance_url": sf.url, "streams": {"s": {"column_map": {}}}})
    with pytest.raises(ConfigError, match="no credentials"):
        SalesforceDestination({"instance_url": sf.url}).check()
    with pytest.raises(ConfigError, match="not an https:// URL"):
        SalesforceDestination({"instance_url": "http://x", "access_token": "t"}).check()
    assert json.dumps([f.name for f in spec.config_schema if f.secret]) == json.dumps(
        ["access_token", "client_secret", "password", "security_token", "private_key"]
    )
    assert os.environ.get("JDI_NEVER_SET") is None


def test_duplicate_external_id_in_salesforce_is_a_rejected_row(sf: SalesforceServer, sf_config: dict[str, Any]) -> None:
    for name in ("one", "two"):  # Legacy_Key__c is an external ID but not unique: two records share L1
        sf.org.write("Account", {"Name": name, "Legacy_Key__c": "L1"}, op="insert", ext=None, from_csv=False, seen=set())
    batch = pa.record_batch({"legacy_key__c": ["L1", "L2"], "name": ["x", "y"]})
    with pytest.raises(DIError, match=r"'L1': DUPLICATE_EXTERNAL_ID: Legacy_Key__c: more than one record found"):
        write(sf_config, [batch], settings(unique_constraints=["legacy_key__c"]), mapping={})
    assert sorted(r["Name"] for r in sf.rows("Account")) == ["one", "two", "y"]


def test_one_key_column_only(sf: SalesforceServer, sf_config: dict[str, Any]) -> None:
    with pytest.raises(SchemaMismatch, match="a Salesforce upsert matches on exactly one external ID field"):
        write(sf_config, [accounts(1)], settings(unique_constraints=["ext_id__c", "name"]))
    assert writes(sf) == 0


def test_dropped_connection_repeats_upserts_but_never_an_insert(sf: SalesforceServer, sf_config: dict[str, Any]) -> None:
    sf.drop_next(1, "/composite/sobjects/Account")
    write(sf_config, [accounts(5)])  # an upsert is keyed: sent again on a new connection
    assert len(sf.rows("Account")) == 5 and sf.count("PATCH", "/composite/sobjects/Account/Ext_Id__c") == 2
    sf.drop_next(1, "/composite/sobjects")
    plain = accounts(3, 10).drop_columns(["ext_id__c"])
    with pytest.raises(DIError, match="whether Salesforce wrote those rows is unknown, and an insert is not repeated blindly"):
        write(sf_config, [plain], settings(unique_constraints=[]))
    assert len(sf.rows("Account")) == 5


def test_full_table_without_a_key_is_refused(sf: SalesforceServer, sf_config: dict[str, Any]) -> None:
    plain = accounts(3).drop_columns(["ext_id__c"])
    with pytest.raises(ConfigError, match="needs an external ID key: Salesforce cannot replace an object's records"):
        write(sf_config, [plain], settings(unique_constraints=[], replication_method=FULL_TABLE))
    assert writes(sf) == 0


def test_upsert_on_the_record_id(sf: SalesforceServer, sf_config: dict[str, Any]) -> None:
    write(sf_config, [accounts(3000)])
    ids = [r["Id"] for r in sf.rows("Account")]
    for threshold in (2000, 100):  # collections (an update by Id), then Bulk API 2.0 (upsert on Id)
        batch = pa.record_batch({"id": ids, "name": [f"by id {threshold}"] * len(ids)})
        write({**sf_config, "bulk_threshold": threshold}, [batch.slice(0, 1500)], settings(unique_constraints=["id"]), mapping={})
        assert sum(r["Name"] == f"by id {threshold}" for r in sf.rows("Account")) == 1500
    bad = pa.record_batch({"id": ["1234"], "name": ["x"]})
    with pytest.raises(SchemaMismatch, match="'id' → Id: 1 value\\(s\\) not 15- or 18-character Salesforce IDs"):
        write(sf_config, [bad], settings(unique_constraints=["id"]), mapping={})


def test_a_bulk_job_that_dies_midway_fails_the_stream(sf: SalesforceServer, sf_config: dict[str, Any]) -> None:
    sf.stop_jobs_after = 40
    commits: list = []
    with pytest.raises(DIError) as failed:
        _, commits, _ = write({**sf_config, "bulk_threshold": 10}, [accounts(100)])
    text = str(failed.value)
    assert "ended Failed: InternalServerError : the job was stopped while processing; 40 rows were processed" in text
    assert "the bookmark did not move" in text and commits == []
    assert len(sf.rows("Account")) == 40
    sf.stop_jobs_after = None
    write({**sf_config, "bulk_threshold": 10}, [accounts(100)])  # a rerun upserts them all, once
    assert len(sf.rows("Account")) == 100


def test_ignore_with_many_long_keys_queries_in_short_chunks(sf: SalesforceServer, sf_config: dict[str, Any]) -> None:
    keys = [f"{i:05d}-" + "k" * 40 for i in range(500)]
    first = pa.record_batch({"ext_id__c": keys[:250], "name": ["first"] * 250})
    write(sf_config, [first], mapping={})
    both = pa.record_batch({"ext_id__c": keys, "name": ["second"] * 500})
    sf.requests.clear()
    write(sf_config, [both], settings(unique_conflict_method="IGNORE"), mapping={})
    rows = by_ext(sf)
    assert len(rows) == 500 and rows[keys[0]]["Name"] == "first" and rows[keys[-1]]["Name"] == "second"
    assert sf.count("GET", "/query") == 4  # about 8,000 characters of keys per query: 163 of these
    assert max(len(p) for m, p in sf.requests if "/query" in p) < 16_000


def test_a_column_without_values_fits_any_field(sf: SalesforceServer, sf_config: dict[str, Any]) -> None:
    write(sf_config, [accounts(2)])
    batch = pa.record_batch({"ext_id__c": ["A000000", "A000001"], "score": pa.nulls(2)})
    write(sf_config, [batch], mapping={"score": "Score__c"})
    assert [r["Score__c"] for r in sf.rows("Account")] == [None, None]
    with pytest.raises(SchemaMismatch, match=r"'name' → Name: 2 value\(s\) missing"):
        write(sf_config, [pa.record_batch({"ext_id__c": ["X1", "X2"], "name": pa.nulls(2)})], mapping={})


def test_credentials_are_checked_with_the_config(sf: SalesforceServer) -> None:
    with pytest.raises(ConfigError, match="the username-password flow needs client_id, client_secret"):
        check_config(get_spec("salesforce"), {"login_url": sf.url, "username": "u", "password": "p"})
    with pytest.raises(ConfigError, match="the JWT bearer flow needs client_id"):
        check_config(get_spec("salesforce"), {"username": "u", "private_key": "k"})


def test_many_rejected_rows_are_listed_twenty_and_saved_all(sf: SalesforceServer, sf_config: dict[str, Any], tmp_path: Path) -> None:
    for i in range(30):
        sf.org.reject("Account", "Name", f"Account {i}", "FIELD_CUSTOM_VALIDATION_EXCEPTION", f"no {i}")
    with pytest.raises(DIError) as failed:
        write(sf_config, [accounts(40)])
    assert "'A000019': FIELD_CUSTOM_VALIDATION_EXCEPTION: no 19; and 10 more (set rejected_rows_file" in str(failed.value)
    target = tmp_path / "r.jsonl"
    with pytest.raises(DIError, match=f"and 10 more \\(all of them are in {target}\\)"):
        write(sf_config, [accounts(40)], rejected_rows_file=str(target))
    saved = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(saved) == 30 and saved[29] == {
        "stream": "accounts",
        "key": "A000029",
        "error_code": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "message": "no 29",
        "fields": "",
    }
