"""A local stand-in for Salesforce's REST API, over TLS on 127.0.0.1, for tests, the benchmark and the example.

Why our own: no Salesforce org is reachable from here, and the one stand-in on the package index
(simple-mockforce) patches ``requests`` inside the test process; it is not a server, so it cannot
test our HTTP client, TLS, or a CLI run in another process.  This one follows the shapes Salesforce
documents for exactly the endpoints the ``salesforce`` destination uses, and ``simple-salesforce``
(a widely used client) is run against it in ``tests/connectors/salesforce/test_stand_in.py``.

What it serves (``/services/data/vXX.X`` for any version ``XX.X``):

* ``POST /services/oauth2/token``: the OAuth 2.0 username-password grant (password + security token
  appended) and the JWT bearer grant (RS256 assertion checked against the connected app's certificate:
  issuer = client id, subject = username, audience = the login URL, ``exp`` in the future); errors are
  ``400 {"error": "invalid_grant" | "invalid_client_id" | "invalid_client" | "unsupported_grant_type",
  "error_description": ...}``.
* Every data request needs ``Authorization: Bearer <token>``; an unknown or expired one gets
  ``401 [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]``.
  ``fail_next(n)`` answers the next data requests with ``403 REQUEST_LIMIT_EXCEEDED``.
* ``GET sobjects/<obj>/describe`` (fields with type, length, precision/scale, createable, updateable,
  nillable, defaultedOnCreate, externalId, idLookup, unique); unknown object: ``404 NOT_FOUND``.
* sObject rows: ``POST sobjects/<obj>/``, ``GET/PATCH/DELETE sobjects/<obj>/<id>``,
  ``GET/PATCH sobjects/<obj>/<extField>/<value>`` (upsert: 201 created / 200 updated).
* sObject Collections: ``POST composite/sobjects`` (insert), ``PATCH composite/sobjects`` (update by
  Id), ``PATCH composite/sobjects/<obj>/<extField>`` (upsert), ``DELETE composite/sobjects?ids=``; at
  most 200 records, ``allOrNone``; results in request order (``id``, ``success``, ``errors``
  [``statusCode``, ``message``, ``fields``], ``created`` for upserts).
* Bulk API 2.0 ingest: ``POST jobs/ingest`` (insert/upsert/update/delete, CSV), ``PUT
  jobs/ingest/<id>/batches`` (201; at most ``max_upload_bytes`` once base64-encoded, 150 MB at
  Salesforce), ``PATCH jobs/ingest/<id>`` ``{"state": "UploadComplete" | "Aborted"}``, ``GET
  jobs/ingest/<id>`` (state Open → UploadComplete → InProgress → JobComplete | Failed, counts),
  ``GET .../successfulResults/`` (``sf__Id``, ``sf__Created``, the row), ``.../failedResults/``
  (``sf__Id``, ``sf__Error``, the row), ``.../unprocessedrecords/``; result rows are *not* in upload
  order (Salesforce does not promise it, so a client must not rely on it).  In CSV an empty value
  leaves a field unchanged and ``#N/A`` sets it to null.  ``hold_jobs()`` keeps closed jobs
  ``UploadComplete`` until ``release_jobs()`` (to kill a client mid-job).
* ``GET query?q=`` for ``SELECT f, ... FROM obj [WHERE f IN (...) | WHERE f != null] [ORDER BY f]
  [LIMIT n]`` and ``SELECT COUNT() FROM obj``, paged by 2,000 with ``nextRecordsUrl``.
* Record errors as Salesforce names them: ``REQUIRED_FIELD_MISSING``, ``STRING_TOO_LONG``,
  ``INVALID_TYPE_ON_FIELD_IN_RECORD``, ``INVALID_FIELD_FOR_INSERT_UPDATE``, ``DUPLICATE_VALUE``
  (a unique field, or one external ID twice in one request), ``DUPLICATE_EXTERNAL_ID`` (an external ID
  matching several records), ``MALFORMED_ID``, ``ENTITY_IS_DELETED``/``NOT_FOUND``; an unknown field
  fails the whole request (``400 INVALID_FIELD``) or the bulk job (``Failed``, ``InvalidBatch``).
  ``reject(obj, field, value, code, message)`` makes rows carrying a value fail with any code
  (a validation rule).

Run it alone (the benchmark does, so its CPU is not counted as the client's):
``python tests/support/salesforce_server.py serve`` prints one JSON line with ``url``, ``ca`` and
``token``, then serves until killed.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import itertools
import json
import re
import ssl
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

DATA = re.compile(r"^/services/data/v(\d+\.\d)(/.*)?$")
QUERY_PAGE = 2000
MAX_COLLECTION = 200
UTC = dt.timezone.utc

# -- schema -----------------------------------------------------------------------------------


@dataclass
class Field:
    name: str
    type: str = "string"  # id string textarea email phone url picklist boolean int double currency percent date datetime reference
    length: int = 0
    precision: int = 0
    scale: int = 0
    createable: bool = True
    updateable: bool = True
    nillable: bool = True
    defaulted: bool = False
    external_id: bool = False
    unique: bool = False
    custom: bool = False

    def describe(self) -> dict[str, Any]:
        text = self.type in ("string", "textarea", "email", "phone", "url", "picklist", "id", "reference")
        soap = {
            "id": "tns:ID",
            "reference": "tns:ID",
            "boolean": "xsd:boolean",
            "int": "xsd:int",
            "double": "xsd:double",
            "currency": "xsd:double",
            "percent": "xsd:double",
            "date": "xsd:date",
            "datetime": "xsd:dateTime",
        }.get(self.type, "xsd:string")
        return {
            "name": self.name,
            "label": self.name.replace("__c", "").replace("_", " "),
            "type": self.type,
            "soapType": soap,
            "length": self.length if text else 0,
            "byteLength": self.length * 3 if text else 0,
            "precision": self.precision,
            "scale": self.scale,
            "digits": self.precision if self.type == "int" else 0,
            "createable": self.createable,
            "updateable": self.updateable,
            "nillable": self.nillable,
            "defaultedOnCreate": self.defaulted,
            "externalId": self.external_id,
            "idLookup": self.external_id or self.type == "id" or self.name == "Name",
            "unique": self.unique,
            "custom": self.custom,
            "calculated": False,
            "autoNumber": False,
            "filterable": True,
            "sortable": True,
            "picklistValues": [],
            "referenceTo": [],
            "relationshipName": None,
        }


def system_fields() -> list[Field]:
    ro = {"createable": False, "updateable": False}
    return [
        Field("Id", "id", length=18, nillable=False, defaulted=True, **ro),
        Field("IsDeleted", "boolean", nillable=False, defaulted=True, **ro),
        Field("CreatedDate", "datetime", nillable=False, defaulted=True, **ro),
        Field("LastModifiedDate", "datetime", nillable=False, defaulted=True, **ro),
        Field("SystemModstamp", "datetime", nillable=False, defaulted=True, **ro),
    ]


def default_objects() -> dict[str, list[Field]]:
    """Account (standard, with an external ID) and Order_Report__c (the spec example's report)."""
    return {
        "Account": [
            *system_fields(),
            Field("Name", length=255, nillable=False),
            Field("AccountNumber", length=40),
            Field("Phone", "phone", length=40),
            Field("Industry", "picklist", length=255),
            Field("AnnualRevenue", "currency", precision=18, scale=0),
            Field("NumberOfEmployees", "int", precision=8),
            Field("Description", "textarea", length=32000),
            Field("Ext_Id__c", length=50, external_id=True, unique=True, custom=True),
            Field("Legacy_Key__c", length=20, external_id=True, custom=True),
            Field("Active__c", "boolean", nillable=False, defaulted=True, custom=True),
            Field("Since__c", "date", custom=True),
            Field("Score__c", "double", precision=5, scale=2, custom=True),
            Field("Last_Seen__c", "datetime", custom=True),
            Field("Code__c", length=10, unique=True, custom=True),
            Field("Formula_Total__c", "currency", precision=18, scale=2, createable=False, updateable=False, custom=True),
        ],
        "Order_Report__c": [
            *system_fields(),
            Field("Name", length=80),
            Field("Order_Id__c", "double", precision=18, scale=0, external_id=True, unique=True, custom=True),
            Field("Customer_Id__c", length=40, custom=True),
            Field("Customer_Name__c", length=255, custom=True),
            Field("Customer_Email__c", "email", length=80, custom=True),
            Field("Status__c", length=40, custom=True),
            Field("Total__c", "currency", precision=16, scale=2, custom=True),
            Field("Updated_At__c", "datetime", custom=True),
            Field("Paid_Charges__c", "double", precision=18, scale=0, custom=True),
            Field("Paid_Amount__c", "currency", precision=16, scale=2, custom=True),
        ],
    }


_CHECKSUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def record_id(prefix: str, n: int) -> str:
    """An 18-character Salesforce ID: 3-character key prefix, 12 characters, 3-character case checksum."""
    body = ""
    while n:
        n, r = divmod(n, 62)
        body = _BASE62[r] + body
    short = prefix + body.rjust(12, "0")
    suffix = ""
    for i in range(3):
        bits = sum(1 << j for j, ch in enumerate(short[i * 5 : i * 5 + 5]) if ch.isupper())
        suffix += _CHECKSUM[bits]
    return short + suffix


ID_RE = re.compile(r"^[a-zA-Z0-9]{15}([a-zA-Z0-9]{3})?$")


class RecordError(Exception):
    def __init__(self, code: str, message: str, fields: list[str] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.fields = code, message, fields or []

    def json(self) -> dict[str, Any]:
        return {"statusCode": self.code, "message": self.message, "fields": self.fields}

    def csv(self) -> str:
        return f"{self.code}:{self.message}:{','.join(self.fields)} --"


class RequestError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _now() -> str:
    return dt.datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


# -- the org ---------------------------------------------------------------------------------


@dataclass
class Job:
    id: str
    object: str
    operation: str
    external_id: str | None
    line_ending: str
    api_version: str
    state: str = "Open"
    data: bytes | None = None
    created: str = field(default_factory=_now)
    processed: int = 0
    failed: int = 0
    error_message: str | None = None
    successful: list[dict[str, str]] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    unprocessed: list[dict[str, str]] = field(default_factory=list)
    header: list[str] = field(default_factory=list)

    def info(self) -> dict[str, Any]:
        out = {
            "id": self.id,
            "operation": self.operation,
            "object": self.object,
            "createdById": "005000000000001AAA",
            "createdDate": self.created,
            "systemModstamp": _now(),
            "state": self.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(self.api_version),
            "jobType": "V2Ingest",
            "lineEnding": self.line_ending,
            "columnDelimiter": "COMMA",
            "numberRecordsProcessed": self.processed,
            "numberRecordsFailed": self.failed,
            "retries": 0,
            "totalProcessingTime": 0,
            "apiActiveProcessingTime": 0,
            "apexProcessingTime": 0,
        }
        if self.external_id:
            out["externalIdFieldName"] = self.external_id
        if self.state == "Open":
            out["contentUrl"] = f"services/data/v{self.api_version}/jobs/ingest/{self.id}/batches"
        if self.error_message:
            out["errorMessage"] = self.error_message
        return out


class Org:
    """The data of one org: objects, records, users, connected apps, tokens, jobs."""

    def __init__(self, objects: dict[str, list[Field]] | None = None) -> None:
        self.objects = objects or default_objects()
        self.records: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in self.objects}
        self.prefixes = {name: ("001" if name == "Account" else f"a{i:02d}") for i, name in enumerate(self.objects)}
        self.counter = itertools.count(1)
        self.users: dict[str, tuple[str, str]] = {"etl@example.com": ("s3cret-Pa55", "TOKEN123")}
        self.apps: dict[str, str] = {"3MVG9-client": "client-secret-xyz"}
        self.app_certs: dict[str, Any] = {}  # client id -> public key (JWT bearer)
        self.tokens: set[str] = set()
        self.jobs: dict[str, Job] = {}
        self.lock = threading.RLock()
        self.rules: list[tuple[str, str, Any, str, str]] = []
        # value -> record ids, for every external ID and unique field: upsert and uniqueness without a scan
        self.index: dict[tuple[str, str], dict[Any, set[str]]] = {
            (obj, f.name): {} for obj, fs in self.objects.items() for f in fs if f.external_id or f.unique
        }

    def lookup(self, obj: str, name: str, value: Any) -> list[dict[str, Any]]:
        ids = self.index.get((obj, name), {}).get(value, set())
        return [self.records[obj][i] for i in sorted(ids)]

    def _reindex(self, obj: str, record: dict[str, Any], name: str, old: Any, new: Any) -> None:
        index = self.index.get((obj, name))
        if index is None or old == new:
            return
        if old is not None:
            index.get(old, set()).discard(record["Id"])
        if new is not None:
            index.setdefault(new, set()).add(record["Id"])

    def snapshot(self, obj: str) -> Any:
        indexes = {k: {v: set(ids) for v, ids in index.items()} for k, index in self.index.items() if k[0] == obj}
        return {k: dict(v) for k, v in self.records[obj].items()}, indexes

    def restore(self, obj: str, snapshot: Any) -> None:
        self.records[obj], indexes = snapshot
        self.index.update(indexes)

    def remove(self, obj: str, rid: str) -> None:
        record = self.records[obj].pop(rid)
        for (o, name), index in self.index.items():
            if o == obj and record.get(name) is not None:
                index.get(record[name], set()).discard(rid)

    # -- schema helpers
    def fields(self, obj: str) -> dict[str, Field]:
        return {f.name.lower(): f for f in self.objects[obj]}

    def describe(self, obj: str, version: str) -> dict[str, Any]:
        return {
            "name": obj,
            "label": obj.replace("__c", "").replace("_", " "),
            "custom": obj.endswith("__c"),
            "keyPrefix": self.prefixes[obj],
            "createable": True,
            "updateable": True,
            "deletable": True,
            "queryable": True,
            "fields": [f.describe() for f in self.objects[obj]],
            "urls": {
                "sobject": f"/services/data/v{version}/sobjects/{obj}",
                "describe": f"/services/data/v{version}/sobjects/{obj}/describe",
                "rowTemplate": f"/services/data/v{version}/sobjects/{obj}/{{ID}}",
            },
        }

    def find_object(self, name: str) -> str:
        for obj in self.objects:
            if obj.lower() == name.lower():
                return obj
        raise RequestError(404, "NOT_FOUND", "The requested resource does not exist")

    # -- values
    def convert(self, f: Field, value: Any, *, from_csv: bool) -> Any:
        """A sent value as stored; RecordError when it does not fit the field."""
        if value is None:
            return None
        if from_csv:
            if value == "#N/A":
                return None
        t = f.type
        try:
            if t in ("boolean",):
                if isinstance(value, bool):
                    return value
                text = str(value).strip().lower()
                if text in ("true", "1"):
                    return True
                if text in ("false", "0"):
                    return False
                raise ValueError
            if t == "int":
                if isinstance(value, bool):
                    raise ValueError
                number = float(value) if isinstance(value, str) else value
                if number != int(number):
                    raise ValueError
                return int(number)
            if t in ("double", "currency", "percent"):
                if isinstance(value, bool):
                    raise ValueError
                number = float(value)
                digits = len(str(int(abs(number))))
                if f.precision and digits > f.precision - f.scale:
                    raise RecordError(
                        "NUMBER_OUTSIDE_VALID_RANGE", f"{f.name}: value outside of valid range on numeric field: {value}", [f.name]
                    )
                return number
            if t == "date":
                return dt.date.fromisoformat(str(value)[:10]).isoformat() if len(str(value)) >= 10 else _bad()
            if t == "datetime":
                text = str(value).replace("Z", "+00:00")
                if re.match(r".*[+-]\d{4}$", text):
                    text = text[:-2] + ":" + text[-2:]
                parsed = dt.datetime.fromisoformat(text)
                if parsed.tzinfo is None:
                    parsed = parsed.replace(tzinfo=UTC)
                return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{parsed.microsecond // 1000:03d}+0000"
            if t in ("id", "reference"):
                if not ID_RE.match(str(value)):
                    raise RecordError("MALFORMED_ID", f"{f.name}: id value of incorrect type: {value}", [f.name])
                return str(value)
        except RecordError:
            raise
        except (ValueError, TypeError, OverflowError):
            raise RecordError("INVALID_TYPE_ON_FIELD_IN_RECORD", f"{f.name}: value not of required type: {value}", [f.name]) from None
        text = value if isinstance(value, str) else json.dumps(value) if isinstance(value, (dict, list)) else str(value)
        if f.length and len(text) > f.length:
            shown = text if len(text) <= 40 else text[:37] + "..."
            raise RecordError("STRING_TOO_LONG", f"{f.name}: data value too large: {shown} (max length={f.length})", [f.name])
        return text

    def reject(self, obj: str, field_name: str, value: Any, code: str, message: str) -> None:
        """A validation rule: rows of ``obj`` whose ``field_name`` is ``value`` fail with ``code``."""
        self.rules.append((obj, field_name.lower(), value, code, message))

    # -- writes (one record; the caller holds the lock)
    def write(self, obj: str, values: dict[str, Any], *, op: str, ext: str | None, from_csv: bool, seen: set) -> tuple[str, bool]:
        """Insert, update or upsert one record; (id, created)."""
        fields = self.fields(obj)
        clean: dict[str, Any] = {}
        unset: list[str] = []
        for name, value in values.items():
            if name == "attributes":
                continue
            f = fields.get(name.lower())
            if f is None:
                raise RequestError(400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {obj}")
            if from_csv and value == "":
                continue  # an empty CSV value leaves the field unchanged
            converted = self.convert(f, value, from_csv=from_csv)
            if converted is None:
                unset.append(f.name)
            clean[f.name] = converted
        for rule_obj, rule_field, rule_value, code, message in self.rules:
            if rule_obj == obj and any(k.lower() == rule_field and v == rule_value for k, v in clean.items()):
                raise RecordError(code, message, [])
        target: dict[str, Any] | None = None
        store = self.records[obj]
        if op in ("update", "delete") or (op == "upsert" and ext and ext.lower() == "id"):
            rid = clean.get("Id")
            if not rid:
                raise RecordError("MISSING_ARGUMENT", "Id not specified in an update call", ["Id"])
            target = store.get(rid) or next((r for k, r in store.items() if k[:15] == str(rid)[:15]), None)
            if target is None:
                if op == "upsert":
                    raise RecordError("NOT_FOUND", "Provided external ID field does not exist or is not accessible: " + str(rid), ["Id"])
                raise RecordError("ENTITY_IS_DELETED", "entity is deleted", [])
        elif op == "upsert":
            assert ext is not None
            ext_field = fields[ext.lower()]
            key = clean.get(ext_field.name)
            if key is None:
                raise RecordError("MISSING_ARGUMENT", f"{ext_field.name} not specified", [ext_field.name])
            if (ext_field.name, key) in seen:
                raise RecordError("DUPLICATE_VALUE", f"Duplicate external id specified: {key}", [ext_field.name])
            seen.add((ext_field.name, key))
            matches = self.lookup(obj, ext_field.name, key)
            if len(matches) > 1:
                raise RecordError(
                    "DUPLICATE_EXTERNAL_ID",
                    f"{ext_field.name}: more than one record found for external id field: {[m['Id'] for m in matches]}",
                    [ext_field.name],
                )
            target = matches[0] if matches else None
        if op == "delete":
            assert target is not None
            self.remove(obj, target["Id"])
            return target["Id"], False
        creating = target is None
        for name in list(clean):
            f = fields[name.lower()]
            if name == "Id" or (ext and f.name.lower() == ext.lower() and not creating):
                continue
            if not (f.createable if creating else f.updateable):
                raise RecordError(
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {f.name}. Please check the security settings of this field and verify "
                    "that it is read/write for your profile or permission set.",
                    [f.name],
                )
        if creating:
            missing = [
                f.name
                for f in self.objects[obj]
                if not f.nillable and f.createable and not f.defaulted and f.type != "boolean" and clean.get(f.name) is None
            ]
            if missing:
                raise RecordError("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing)
        else:
            nulled = [n for n in unset if not fields[n.lower()].nillable]
            if nulled:
                raise RecordError("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(nulled)}]", nulled)
        for name, value in clean.items():
            f = fields[name.lower()]
            if f.unique and value is not None:
                clash = next((r for r in self.lookup(obj, name, value) if r is not target), None)
                if clash is not None:
                    raise RecordError(
                        "DUPLICATE_VALUE", f"duplicate value found: {name} duplicates value on record with id: {clash['Id']}", [name]
                    )
        now = _now()
        if creating:
            rid = record_id(self.prefixes[obj], next(self.counter))
            target = {f.name: None for f in self.objects[obj]}
            target.update({"Id": rid, "IsDeleted": False, "CreatedDate": now})
            for f in self.objects[obj]:
                if f.type == "boolean" and target[f.name] is None:
                    target[f.name] = False
            store[rid] = target
        assert target is not None
        for name, value in clean.items():
            if name != "Id":
                self._reindex(obj, target, name, target.get(name), value)
                target[name] = value
        target["LastModifiedDate"] = target["SystemModstamp"] = now
        return target["Id"], creating

    # -- queries
    def query(self, soql: str) -> tuple[list[dict[str, Any]] | int, str]:
        m = re.match(
            r"^\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<obj>\w+)"
            r"(?:\s+WHERE\s+(?P<where>.+?))?(?:\s+ORDER\s+BY\s+(?P<order>\w+)(?:\s+(?P<dir>ASC|DESC))?)?"
            r"(?:\s+LIMIT\s+(?P<limit>\d+))?\s*$",
            soql,
            re.IGNORECASE | re.DOTALL,
        )
        if not m:
            raise RequestError(400, "MALFORMED_QUERY", f"unexpected token in: {soql[:80]}")
        obj = self.find_object(m["obj"])
        fields = self.fields(obj)

        def field_of(name: str) -> Field:
            f = fields.get(name.strip().lower())
            if f is None:
                raise RequestError(400, "INVALID_FIELD", f"No such column '{name.strip()}' on entity '{obj}'.")
            return f

        rows = sorted(self.records[obj].values(), key=lambda r: r["Id"])
        where = m["where"]
        if where:
            w = re.match(r"^(\w+)\s+IN\s*\((.*)\)$", where.strip(), re.IGNORECASE | re.DOTALL)
            n = re.match(r"^(\w+)\s*!=\s*null$", where.strip(), re.IGNORECASE)
            e = re.match(r"^(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|[\w.+-]+)$", where.strip(), re.IGNORECASE)
            if w:
                f = field_of(w.group(1))
                values = {self._literal(v, f) for v in _split_literals(w.group(2))}
                rows = [r for r in rows if r.get(f.name) in values]
            elif n:
                f = field_of(n.group(1))
                rows = [r for r in rows if r.get(f.name) is not None]
            elif e:
                f = field_of(e.group(1))
                value = self._literal(e.group(2), f)
                rows = [r for r in rows if r.get(f.name) == value]
            else:
                raise RequestError(400, "MALFORMED_QUERY", f"unsupported WHERE clause: {where[:80]}")
        if m["order"]:
            f = field_of(m["order"])
            rows = sorted(rows, key=lambda r: (r.get(f.name) is None, r.get(f.name)), reverse=(m["dir"] or "").upper() == "DESC")
        if m["limit"]:
            rows = rows[: int(m["limit"])]
        if m["fields"].strip().upper() == "COUNT()":
            return len(rows), obj
        names = [field_of(n).name for n in m["fields"].split(",")]
        return [{name: r.get(name) for name in names} for r in rows], obj

    def _literal(self, text: str, f: Field) -> Any:
        text = text.strip()
        if text.startswith("'"):
            value: Any = re.sub(r"\\(.)", r"\1", text[1:-1])
        elif text.lower() == "null":
            return None
        else:
            value = text
        try:
            return self.convert(f, value, from_csv=False)
        except RecordError:
            return value


def _bad() -> Any:
    raise ValueError


def _split_literals(text: str) -> list[str]:
    out, buf, quoted, escaped = [], "", False, False
    for ch in text:
        if escaped:
            buf += ch
            escaped = False
        elif ch == "\\" and quoted:
            buf += ch
            escaped = True
        elif ch == "'":
            quoted = not quoted
            buf += ch
        elif ch == "," and not quoted:
            out.append(buf)
            buf = ""
        else:
            buf += ch
    if buf.strip():
        out.append(buf)
    return out


# -- the server ------------------------------------------------------------------------------


class SalesforceServer:
    """The stand-in, on a thread: ``with SalesforceServer() as sf: sf.url, sf.ca_path, sf.token``."""

    def __init__(self, objects: dict[str, list[Field]] | None = None, *, job_delay: float = 0.05) -> None:
        import trustme

        self.org = Org(objects)
        self.job_delay = job_delay
        self.max_upload_bytes = 150 * 1024 * 1024
        self.requests: list[tuple[str, str]] = []  # (method, path)
        self._failures = 0
        self._drops: tuple[int, str] = (0, "")
        self.stop_jobs_after: int | None = None
        """Bulk jobs end ``Failed`` after processing this many rows (the rest: ``unprocessedrecords``)."""
        self._hold = threading.Event()
        self._hold.set()
        self._folder = tempfile.TemporaryDirectory(prefix="sf-stand-in-")
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        self.ca_path = str(Path(self._folder.name) / "ca.pem")
        ca.cert_pem.write_to_path(self.ca_path)
        self._ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(self._ssl)
        self._httpd: ThreadingHTTPServer | None = None
        self.token = self.issue_token()

    # -- test controls
    @property
    def url(self) -> str:
        assert self._httpd is not None, "start() first"
        return f"https://127.0.0.1:{self._httpd.server_address[1]}"

    def issue_token(self) -> str:
        token = "00D000000000001!" + base64.urlsafe_b64encode(uuid.uuid4().bytes * 2).decode().rstrip("=")
        self.org.tokens.add(token)
        return token

    def expire_tokens(self) -> None:
        """Every session ends (Salesforce's session timeout): the next data request gets 401."""
        self.org.tokens.clear()

    def drop_next(self, n: int, fragment: str = "") -> None:
        """The next ``n`` requests whose path holds ``fragment`` get no answer: the connection just closes
        (before the request is processed), as a proxy or a network failure does."""
        self._drops = (n, fragment)

    def take_drop(self, path: str) -> bool:
        with self.org.lock:
            n, fragment = self._drops
            if n > 0 and fragment in path:
                self._drops = (n - 1, fragment)
                return True
        return False

    def fail_next(self, n: int) -> None:
        """The next ``n`` data requests get ``403 REQUEST_LIMIT_EXCEEDED``."""
        self._failures = n

    def hold_jobs(self) -> None:
        self._hold.clear()

    def release_jobs(self) -> None:
        self._hold.set()

    def add_jwt_app(self, client_id: str, public_key: Any) -> None:
        self.org.app_certs[client_id] = public_key

    def count(self, method: str, fragment: str) -> int:
        return sum(1 for m, p in self.requests if m == method and fragment in p)

    def rows(self, obj: str) -> list[dict[str, Any]]:
        with self.org.lock:
            return [dict(r) for r in sorted(self.org.records[obj].values(), key=lambda r: r["Id"])]

    # -- life cycle
    def start(self) -> SalesforceServer:
        server = self

        class Handler(_Handler):
            sf = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._httpd.socket = self._ssl.wrap_socket(self._httpd.socket, server_side=True)
        threading.Thread(target=self._httpd.serve_forever, name="salesforce-stand-in", daemon=True).start()
        return self

    def stop(self) -> None:
        self._hold.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        self._folder.cleanup()

    def __enter__(self) -> SalesforceServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def take_failure(self) -> bool:
        with self.org.lock:
            if self._failures > 0:
                self._failures -= 1
                return True
        return False

    # -- bulk processing
    def process(self, job: Job) -> None:
        def run() -> None:
            time.sleep(self.job_delay)
            self._hold.wait()
            with self.org.lock:
                if job.state != "UploadComplete":
                    return
                job.state = "InProgress"
            time.sleep(self.job_delay)
            self._run_job(job)

        threading.Thread(target=run, daemon=True).start()

    def _run_job(self, job: Job) -> None:
        org = self.org
        text = (job.data or b"").decode("utf-8")
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next(reader, [])
        fields = org.fields(job.object)
        unknown = [h for h in header if h.lower() not in fields]
        with org.lock:
            if not header or unknown:
                job.state = "Failed"
                job.error_message = f"InvalidBatch : Field name not found : {unknown[0]}" if unknown else "InvalidBatch : no header row"
                return
            job.header = header
            seen: set = set()
            stop = self.stop_jobs_after
            for row in reader:
                if not row:
                    continue
                values = dict(zip(header, row))
                if stop is not None and job.processed >= stop:  # the job dies midway: the rest is unprocessed
                    job.unprocessed.append(values)
                    job.unprocessed.extend(dict(zip(header, r)) for r in reader if r)
                    job.state = "Failed"
                    job.error_message = "InternalServerError : the job was stopped while processing"
                    return
                try:
                    rid, created = org.write(job.object, values, op=job.operation, ext=job.external_id, from_csv=True, seen=seen)
                    job.successful.append({"sf__Id": rid, "sf__Created": "true" if created else "false", **values})
                except RecordError as err:
                    job.failures.append({"sf__Id": values.get("Id", ""), "sf__Error": err.csv(), **values})
                    job.failed += 1
                except RequestError as err:
                    job.failures.append({"sf__Id": "", "sf__Error": f"{err.code}:{err.message}: --", **values})
                    job.failed += 1
                job.processed += 1
            job.state = "JobComplete"


class _Handler(BaseHTTPRequestHandler):
    sf: SalesforceServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- plumbing
    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: Any = None, *, ctype: str = "application/json;charset=UTF-8") -> None:
        if body is None:
            raw = b""
        elif isinstance(body, bytes):
            raw = body
        else:
            raw = json.dumps(body).encode()
        self.send_response(status)
        if raw or status not in (201, 204):
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        if raw:
            self.wfile.write(raw)

    def _error(self, status: int, code: str, message: str) -> None:
        self._send(status, [{"message": message, "errorCode": code}])

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PATCH(self) -> None:  # noqa: N802
        self._dispatch("PATCH")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        self.sf.requests.append((method, path))
        body = self._body()
        if self.sf.take_drop(path):
            self.close_connection = True
            return
        try:
            if path == "/services/oauth2/token" and method == "POST":
                return self._token(body)
            if path == "/services/data":
                return self._send(200, [{"label": "Winter '26", "url": "/services/data/v65.0", "version": "65.0"}])
            m = DATA.match(path)
            if not m:
                return self._error(404, "NOT_FOUND", "The requested resource does not exist")
            auth = self.headers.get("Authorization", "")
            token = auth.split(" ", 1)[1] if " " in auth else ""
            if token not in self.sf.org.tokens:
                return self._error(401, "INVALID_SESSION_ID", "Session expired or invalid")
            if self.sf.take_failure():
                return self._error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
            version, rest = m.group(1), (m.group(2) or "")
            self._data(method, version, rest, parse_qs(parts.query), body)
        except RequestError as err:
            self._error(err.status, err.code, err.message)

    # -- OAuth
    def _token(self, body: bytes) -> None:
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        org = self.sf.org
        grant = form.get("grant_type")
        base = f"https://{self.headers.get('Host', '127.0.0.1')}"

        def fail(error: str, description: str) -> None:
            self._send(400, {"error": error, "error_description": description})

        if grant == "password":
            client = form.get("client_id", "")
            if client not in org.apps:
                return fail("invalid_client_id", "client identifier invalid")
            if form.get("client_secret") != org.apps[client]:
                return fail("invalid_client", "invalid client credentials")
            user = org.users.get(form.get("username", ""))
            if user is None or form.get("password") != user[0] + user[1]:
                return fail("invalid_grant", "authentication failure")
        elif grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            problem = self._check_jwt(form.get("assertion", ""), base)
            if problem:
                return fail(*problem)
        else:
            return fail("unsupported_grant_type", "grant type not supported")
        token = self.sf.issue_token()
        self._send(
            200,
            {
                "access_token": token,
                "instance_url": base,
                "id": f"{base}/id/00D000000000001AAA/005000000000001AAA",
                "token_type": "Bearer",
                "issued_at": str(int(time.time() * 1000)),
                "signature": base64.b64encode(uuid.uuid4().bytes).decode(),
                "scope": "api",
            },
        )

    def _check_jwt(self, assertion: str, base: str) -> tuple[str, str] | None:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        try:
            head64, claims64, sig64 = assertion.split(".")
            header = json.loads(_unb64(head64))
            claims = json.loads(_unb64(claims64))
            signature = _unb64(sig64)
        except (ValueError, TypeError):
            return ("invalid_grant", "invalid assertion")
        if header.get("alg") != "RS256":
            return ("invalid_grant", "invalid assertion")
        key = self.sf.org.app_certs.get(claims.get("iss"))
        if key is None:
            return ("invalid_client_id", "client identifier invalid")
        try:
            key.verify(signature, f"{head64}.{claims64}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return ("invalid_grant", "invalid assertion")
        if claims.get("aud") not in (base, "https://login.salesforce.com", "https://test.salesforce.com"):
            return ("invalid_grant", "audience is invalid")
        if not isinstance(claims.get("exp"), (int, float)) or claims["exp"] < time.time():
            return ("invalid_grant", "expired authorization code")
        if claims.get("sub") not in self.sf.org.users:
            return ("invalid_grant", "user hasn't approved this consumer")
        return None

    # -- data API
    def _data(self, method: str, version: str, rest: str, query: dict[str, list[str]], body: bytes) -> None:
        org = self.sf.org
        seg = [s for s in rest.split("/") if s]
        if not seg and method == "GET":
            names = ("sobjects", "query", "composite", "jobs")
            return self._send(200, {n: f"/services/data/v{version}/{n}" for n in names})
        if seg == ["sobjects"] and method == "GET":
            listed = [{k: v for k, v in org.describe(o, version).items() if k not in ("fields", "urls")} for o in org.objects]
            return self._send(200, {"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": listed})
        if seg[:1] == ["sobjects"] and len(seg) >= 2:
            obj = org.find_object(seg[1])
            if seg[2:] == ["describe"] and method == "GET":
                return self._send(200, org.describe(obj, version))
            return self._sobject(method, version, obj, seg[2:], body)
        if seg[:2] == ["composite", "sobjects"]:
            return self._collection(method, seg[2:], query, body)
        if seg[:2] == ["jobs", "ingest"]:
            return self._bulk(method, version, seg[2:], body)
        if seg[:1] == ["query"]:
            return self._query(version, seg[1:], query)
        raise RequestError(404, "NOT_FOUND", "The requested resource does not exist")

    def _json(self, body: bytes) -> Any:
        try:
            return json.loads(body or b"null")
        except ValueError:
            raise RequestError(400, "JSON_PARSER_ERROR", "Unexpected character in the request body") from None

    def _sobject(self, method: str, version: str, obj: str, seg: list[str], body: bytes) -> None:
        org = self.sf.org
        with org.lock:
            store = org.records[obj]
            if not seg and method == "POST":
                try:
                    rid, _ = org.write(obj, self._json(body), op="insert", ext=None, from_csv=False, seen=set())
                except RecordError as err:
                    return self._send(400, [{"message": err.message, "errorCode": err.code, "fields": err.fields}])
                return self._send(201, {"id": rid, "success": True, "errors": []})
            if len(seg) == 1:
                record = store.get(seg[0])
                if record is None:
                    raise RequestError(404, "NOT_FOUND", "The requested resource does not exist")
                if method == "GET":
                    return self._send(200, _with_attributes(obj, version, record))
                if method == "DELETE":
                    org.remove(obj, record["Id"])
                    return self._send(204)
                if method == "PATCH":
                    try:
                        org.write(obj, {**self._json(body), "Id": record["Id"]}, op="update", ext=None, from_csv=False, seen=set())
                    except RecordError as err:
                        return self._send(400, [{"message": err.message, "errorCode": err.code, "fields": err.fields}])
                    return self._send(204)
            if len(seg) == 2:
                ext = org.fields(obj).get(seg[0].lower())
                if ext is None or not (ext.external_id or ext.type == "id"):
                    raise RequestError(404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {seg[0]}")
                if method == "GET":
                    value = org.convert(ext, seg[1], from_csv=False)
                    found = [r for r in store.values() if r.get(ext.name) == value]
                    if not found:
                        raise RequestError(404, "NOT_FOUND", "The requested resource does not exist")
                    return self._send(200, _with_attributes(obj, version, found[0]))
                if method == "PATCH":
                    values = {**self._json(body), ext.name: seg[1]}
                    try:
                        rid, created = org.write(obj, values, op="upsert", ext=ext.name, from_csv=False, seen=set())
                    except RecordError as err:
                        return self._send(400, [{"message": err.message, "errorCode": err.code, "fields": err.fields}])
                    return self._send(201 if created else 200, {"id": rid, "success": True, "errors": [], "created": created})
        raise RequestError(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed.")

    def _collection(self, method: str, seg: list[str], query: dict[str, list[str]], body: bytes) -> None:
        org = self.sf.org
        if method == "DELETE":
            ids = [i for i in (query.get("ids") or [""])[0].split(",") if i]
            all_or_none = (query.get("allOrNone") or ["false"])[0] == "true"
            if len(ids) > MAX_COLLECTION:
                raise RequestError(
                    400, "EXCEEDED_ID_LIMIT", f"record limit reached. cannot submit more than {MAX_COLLECTION} records into this call"
                )
            with org.lock:
                out = []
                for rid in ids:
                    obj = next((o for o, s in org.records.items() if rid in s), None)
                    if obj is None:
                        out.append(
                            {
                                "id": rid,
                                "success": False,
                                "errors": [{"statusCode": "ENTITY_IS_DELETED", "message": "entity is deleted", "fields": []}],
                            }
                        )
                    elif not all_or_none:
                        org.remove(obj, rid)
                        out.append({"id": rid, "success": True, "errors": []})
                    else:
                        out.append({"id": rid, "success": True, "errors": []})
                if all_or_none and any(not r["success"] for r in out):
                    out = [r if not r["success"] else {"id": r["id"], "success": False, "errors": [_rolled_back()]} for r in out]
                elif all_or_none:
                    for rid in ids:
                        for obj, store in org.records.items():
                            if rid in store:
                                org.remove(obj, rid)
            return self._send(200, out)
        payload = self._json(body)
        if not isinstance(payload, dict) or not isinstance(payload.get("records"), list):
            raise RequestError(400, "JSON_PARSER_ERROR", "Cannot deserialize the request body: expected {allOrNone, records}")
        records = payload["records"]
        if len(records) > MAX_COLLECTION:
            raise RequestError(
                400, "EXCEEDED_ID_LIMIT", f"record limit reached. cannot submit more than {MAX_COLLECTION} records into this call"
            )
        if method == "POST" and not seg:
            op, ext = "insert", None
        elif method == "PATCH" and not seg:
            op, ext = "update", None
        elif method == "PATCH" and len(seg) == 2:
            op, ext = "upsert", seg[1]
        else:
            raise RequestError(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed.")
        types = {(r.get("attributes") or {}).get("type") for r in records if isinstance(r, dict)}
        if None in types or len(types) > 1 or (seg and org.find_object(seg[0]) not in {org.find_object(t) for t in types if t}):
            raise RequestError(400, "INVALID_TYPE", "Must send a concrete entity type.")
        obj = org.find_object(next(iter(types))) if types else (org.find_object(seg[0]) if seg else "")
        if ext is not None:
            f = org.fields(obj).get(ext.lower())
            if f is None or not (f.external_id or f.type == "id"):
                raise RequestError(400, "INVALID_FIELD", f"Field name provided, {ext} is not an External ID or indexed field for {obj}")
        with org.lock:
            # reject the whole request first if a field is unknown (Salesforce fails deserialization)
            fields = org.fields(obj)
            for r in records:
                for name in r:
                    if name != "attributes" and name.lower() not in fields:
                        raise RequestError(400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {obj}")
            snapshot = org.snapshot(obj) if payload.get("allOrNone") else None
            out: list[dict[str, Any]] = []
            seen: set = set()
            for r in records:
                values = {k: v for k, v in r.items() if k != "attributes"}
                try:
                    rid, created = org.write(obj, values, op=op, ext=ext, from_csv=False, seen=seen)
                    result: dict[str, Any] = {"id": rid, "success": True, "errors": []}
                    if op == "upsert":
                        result["created"] = created
                except RecordError as err:
                    result = {"success": False, "errors": [err.json()]}
                    if op == "update":
                        result["id"] = values.get("Id")
                out.append(result)
            if snapshot is not None and any(not r["success"] for r in out):
                org.restore(obj, snapshot)
                out = [r if not r["success"] else {"id": None, "success": False, "errors": [_rolled_back()]} for r in out]
        self._send(200, out)

    def _bulk(self, method: str, version: str, seg: list[str], body: bytes) -> None:
        org = self.sf.org
        if not seg and method == "POST":
            spec = self._json(body) or {}
            operation = spec.get("operation")
            if operation not in ("insert", "upsert", "update", "delete", "hardDelete"):
                raise RequestError(400, "INVALIDJOB", f"InvalidJob : Invalid operation: {operation}")
            obj = org.find_object(spec.get("object") or "")
            ext = spec.get("externalIdFieldName")
            if operation == "upsert":
                f = org.fields(obj).get((ext or "").lower())
                if not ext:
                    raise RequestError(
                        400, "INVALIDJOB", f"InvalidJob : External ID was blank for {obj}. An External ID must be specified for upsert."
                    )
                if f is None or not (f.external_id or f.type == "id"):
                    raise RequestError(
                        400, "INVALIDJOB", f"InvalidJob : Field name provided, {ext} is not an External ID or indexed field for {obj}"
                    )
            if spec.get("contentType", "CSV") != "CSV":
                raise RequestError(400, "INVALIDJOB", "InvalidJob : Content type not supported")
            with org.lock:
                job = Job(
                    id=record_id("750", next(org.counter)),
                    object=obj,
                    operation=operation,
                    external_id=ext,
                    line_ending=spec.get("lineEnding", "LF"),
                    api_version=version,
                )
                org.jobs[job.id] = job
            return self._send(200, job.info())
        if not seg:
            with org.lock:
                return self._send(200, {"done": True, "records": [j.info() for j in org.jobs.values()], "nextRecordsUrl": None})
        job = org.jobs.get(seg[0])
        if job is None:
            raise RequestError(404, "NOT_FOUND", "The requested resource does not exist")
        rest = seg[1:]
        if rest == ["batches"] and method == "PUT":
            with org.lock:
                if job.state != "Open":
                    raise RequestError(409, "INVALIDJOBSTATE", f"Job {job.id} is not open for upload: {job.state}")
                if job.data is not None:
                    raise RequestError(400, "INVALIDJOBSTATE", "Job data has already been uploaded for this job")
                if (len(body) + 2) // 3 * 4 > self.sf.max_upload_bytes:
                    raise RequestError(400, "INVALIDBATCH", "InvalidBatch : Records in the job exceed the 150 MB limit")
                job.data = body
            return self._send(201)
        if not rest and method == "PATCH":
            state = (self._json(body) or {}).get("state")
            with org.lock:
                if state == "UploadComplete":
                    if job.state != "Open":
                        raise RequestError(409, "INVALIDJOBSTATE", f"Cannot change the state of job {job.id} from {job.state} to {state}")
                    if job.data is None:
                        job.state = "Failed"
                        job.error_message = "InvalidBatch : no data was uploaded"
                    else:
                        job.state = "UploadComplete"
                        self.sf.process(job)
                elif state == "Aborted":
                    if job.state in ("JobComplete", "Failed", "Aborted"):
                        raise RequestError(409, "INVALIDJOBSTATE", f"Cannot abort job {job.id} in state {job.state}")
                    job.state = "Aborted"
                else:
                    raise RequestError(400, "INVALIDJOBSTATE", f"Invalid state: {state}")
                return self._send(200, job.info())
        if not rest and method == "GET":
            with org.lock:
                return self._send(200, job.info())
        if not rest and method == "DELETE":
            with org.lock:
                del org.jobs[job.id]
            return self._send(204)
        kinds = {"successfulResults": ("sf__Id", "sf__Created"), "failedResults": ("sf__Id", "sf__Error"), "unprocessedrecords": ()}
        # the docs spell unprocessedrecords, clients (simple-salesforce, salesforcer) unprocessedRecords: both work
        named = {k.lower(): k for k in kinds}
        if len(rest) == 1 and rest[0].lower() in named and method == "GET":
            rest = [named[rest[0].lower()]]
            with org.lock:
                if job.state not in ("JobComplete", "Failed", "Aborted"):
                    raise RequestError(409, "INVALIDJOBSTATE", f"Job {job.id} is not complete: {job.state}")
                rows = {"successfulResults": job.successful, "failedResults": job.failures, "unprocessedrecords": job.unprocessed}[rest[0]]
                if rest[0] == "unprocessedrecords" and job.state == "Aborted" and job.data and not job.processed:
                    rows = list(csv.DictReader(io.StringIO(job.data.decode("utf-8"), newline="")))
                header = [*kinds[rest[0]], *job.header]
            out = io.StringIO()
            writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
            writer.writerow(header)
            for row in reversed(rows):  # Salesforce promises no order: neither do we
                writer.writerow([row.get(h, "") for h in header])
            return self._send(200, out.getvalue().encode(), ctype="text/csv")
        raise RequestError(404, "NOT_FOUND", "The requested resource does not exist")

    def _query(self, version: str, seg: list[str], query: dict[str, list[str]]) -> None:
        org = self.sf.org
        with org.lock:
            if seg:  # nextRecordsUrl: /query/<locator>-<offset>
                locator, _, offset = seg[0].rpartition("-")
                soql = _LOCATORS.get(locator)
                if soql is None:
                    raise RequestError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
                start = int(offset)
            else:
                soql = (query.get("q") or [""])[0]
                locator = "01g" + uuid.uuid4().hex[:15]
                _LOCATORS[locator] = soql
                start = 0
            result, obj = org.query(soql)
        if isinstance(result, int):
            return self._send(200, {"totalSize": result, "done": True, "records": []})
        page = result[start : start + QUERY_PAGE]
        done = start + QUERY_PAGE >= len(result)
        out: dict[str, Any] = {"totalSize": len(result), "done": done, "records": [_with_attributes(obj, version, r) for r in page]}
        if not done:
            out["nextRecordsUrl"] = f"/services/data/v{version}/query/{locator}-{start + QUERY_PAGE}"
        self._send(200, out)


_LOCATORS: dict[str, str] = {}


def _rolled_back() -> dict[str, Any]:
    return {
        "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "message": "Record rolled back because not all records were valid and the request was using AllOrNone header",
        "fields": [],
    }


def _with_attributes(obj: str, version: str, record: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"attributes": {"type": obj, "url": f"/services/data/v{version}/sobjects/{obj}/{record.get('Id')}"}}
    out.update(record)
    return out


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jwt_key_pair() -> tuple[str, Any]:
    """A fresh RSA key for the JWT bearer flow: (private key PEM, public key object)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    return pem, key.public_key()


def _serve(args: Iterable[str]) -> None:
    import signal

    server = SalesforceServer().start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(json.dumps({"url": server.url, "ca": server.ca_path, "token": server.token}), flush=True)
    try:
        while True:
            time.sleep(3600)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        _serve(sys.argv[2:])
    else:
        print(__doc__)
