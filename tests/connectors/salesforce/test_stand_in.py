"""The Salesforce stand-in answers a widely used third-party client, simple-salesforce, as it expects.

Why: the stand-in is our own server (no Salesforce org is reachable here); if it answered in shapes
only our connector expects, the connector's tests would prove nothing.  simple-salesforce was
written against the real API, so every call below succeeding with the values we check means the
stand-in speaks that API for the endpoints the destination uses.
"""

from __future__ import annotations

import csv
import io

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceExpiredSession, SalesforceMalformedRequest, SalesforceRefusedRequest

from tests.support.salesforce_server import SalesforceServer


@pytest.fixture
def client(sf: SalesforceServer) -> Salesforce:
    session = requests.Session()
    session.verify = sf.ca_path
    session.trust_env = False  # REQUESTS_CA_BUNDLE in the environment would override verify
    return Salesforce(instance_url=sf.url, session_id=sf.token, session=session, version="62.0")


def test_describe_and_sobject_calls(client: Salesforce, sf: SalesforceServer) -> None:
    fields = {f["name"]: f for f in client.Account.describe()["fields"]}
    assert fields["Ext_Id__c"]["externalId"] and fields["Ext_Id__c"]["length"] == 50
    assert not fields["Id"]["createable"] and not fields["Formula_Total__c"]["updateable"]

    created = client.Account.create({"Name": "Acme", "Ext_Id__c": "A1"})
    assert created["success"] and len(created["id"]) == 18
    assert client.Account.upsert("Ext_Id__c/A1", {"Name": "Acme Corp"}) == 200  # updated
    assert client.Account.upsert("Ext_Id__c/A2", {"Name": "Beta"}) == 201  # created
    assert client.Account.get_by_custom_id("Ext_Id__c", "A1")["Name"] == "Acme Corp"
    assert client.Account.get(created["id"])["Ext_Id__c"] == "A1"
    client.Account.update(created["id"], {"NumberOfEmployees": 12})
    assert sf.rows("Account")[0]["NumberOfEmployees"] == 12

    with pytest.raises(SalesforceMalformedRequest) as bad:
        client.Account.create({"Name": "x" * 300})
    assert bad.value.content[0]["errorCode"] == "STRING_TOO_LONG"
    with pytest.raises(SalesforceMalformedRequest) as missing:
        client.Account.create({"AccountNumber": "1"})
    assert missing.value.content[0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    with pytest.raises(SalesforceMalformedRequest) as unknown:
        client.Account.create({"Name": "x", "Nope__c": 1})
    assert unknown.value.content[0]["errorCode"] == "INVALID_FIELD"

    client.Account.delete(created["id"])
    assert [r["Ext_Id__c"] for r in sf.rows("Account")] == ["A2"]


def test_query_pages_like_salesforce(client: Salesforce, sf: SalesforceServer) -> None:
    client.bulk2.Account.insert(records=[{"Name": f"n{i}", "Ext_Id__c": f"E{i:05d}"} for i in range(4500)], wait=0.1)
    first = client.query("SELECT Id, Ext_Id__c FROM Account")
    assert first["totalSize"] == 4500 and not first["done"] and len(first["records"]) == 2000
    assert first["records"][0]["attributes"]["type"] == "Account"
    assert len(client.query_all("SELECT Id FROM Account")["records"]) == 4500  # follows nextRecordsUrl
    some = client.query("SELECT Ext_Id__c FROM Account WHERE Ext_Id__c IN ('E00001', 'E00002', 'nope')")
    assert sorted(r["Ext_Id__c"] for r in some["records"]) == ["E00001", "E00002"]
    assert client.query("SELECT COUNT() FROM Account")["totalSize"] == 4500


def test_collections_upsert_answers_per_record(client: Salesforce) -> None:
    records = [
        {"attributes": {"type": "Account"}, "Ext_Id__c": "C1", "Name": "ok"},
        {"attributes": {"type": "Account"}, "Ext_Id__c": "C2", "Name": "y" * 300},
        {"attributes": {"type": "Account"}, "Ext_Id__c": "C1", "Name": "again"},
    ]
    body = {"allOrNone": False, "records": records}
    result = client.restful("composite/sobjects/Account/Ext_Id__c", method="PATCH", json=body)
    assert result[0]["success"] and result[0]["created"] is True
    assert result[1]["errors"][0]["statusCode"] == "STRING_TOO_LONG" and result[1]["errors"][0]["fields"] == ["Name"]
    assert result[2]["errors"][0]["statusCode"] == "DUPLICATE_VALUE"  # one external ID twice in one request
    again = client.restful("composite/sobjects/Account/Ext_Id__c", method="PATCH", json={"allOrNone": False, "records": records[:1]})
    assert again[0]["created"] is False
    rolled = client.restful("composite/sobjects/Account/Ext_Id__c", method="PATCH", json={"allOrNone": True, "records": records[:2]})
    assert rolled[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"


def test_bulk2_upsert_and_result_files(client: Salesforce, sf: SalesforceServer) -> None:
    rows = [{"Ext_Id__c": f"B{i}", "Name": f"n{i}", "Score__c": "1.5"} for i in range(20)]
    rows[3]["Name"] = ""  # required: REQUIRED_FIELD_MISSING on create
    rows[7]["Score__c"] = "abc"
    result = client.bulk2.Account.upsert(records=rows, external_id_field="Ext_Id__c", wait=0.1)
    assert result[0]["numberRecordsProcessed"] == 20 and result[0]["numberRecordsFailed"] == 2
    job = result[0]["job_id"]
    failed = list(csv.DictReader(io.StringIO(client.bulk2.Account.get_failed_records(job))))
    assert {r["Ext_Id__c"]: r["sf__Error"].split(":")[0] for r in failed} == {
        "B3": "REQUIRED_FIELD_MISSING",
        "B7": "INVALID_TYPE_ON_FIELD_IN_RECORD",
    }
    ok = list(csv.DictReader(io.StringIO(client.bulk2.Account.get_successful_records(job))))
    assert len(ok) == 18 and {r["sf__Created"] for r in ok} == {"true"}
    header = next(csv.reader(io.StringIO(client.bulk2.Account.get_unprocessed_records(job))))
    assert sorted(header) == ["Ext_Id__c", "Name", "Score__c"]  # only a header: every row was processed
    again = client.bulk2.Account.upsert(records=rows[:2], external_id_field="Ext_Id__c", wait=0.1)
    ok = list(csv.DictReader(io.StringIO(client.bulk2.Account.get_successful_records(again[0]["job_id"]))))
    assert {r["sf__Created"] for r in ok} == {"false"}
    assert len(sf.rows("Account")) == 18


def test_expired_session_and_request_limit(client: Salesforce, sf: SalesforceServer) -> None:
    sf.fail_next(1)
    with pytest.raises(SalesforceRefusedRequest) as limited:
        client.Account.describe()
    assert limited.value.status == 403 and limited.value.content[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    sf.expire_tokens()
    with pytest.raises(SalesforceExpiredSession):
        client.Account.describe()
