"""The http_api source against a real local HTTP server (tests/support/http_server.py)."""

from __future__ import annotations

import json
import socket

import pyarrow as pa
import pytest

from jupyter_di.connectors.base import JSON_LOGICAL_TYPE, LOGICAL_TYPE_KEY, ReadRequest, StreamSettings
from jupyter_di.connectors.http_api import SPEC, HttpApiSource
from jupyter_di.errors import ConfigError, ConnectionFailed
from tests.support.http_server import ApiServer, make_charges, make_customers
from tests.support.streams import read_stream

CUSTOMERS = make_customers()
CHARGES = make_charges()

PAGING = {
    "none": ({"paging": "none"}, {"type": "none"}),
    "page": ({"paging": "page"}, {"type": "page", "page_param": "page", "size_param": "per_page", "page_size": 5}),
    "offset": ({"paging": "offset"}, {"type": "offset", "offset_param": "offset", "size_param": "limit", "page_size": 7}),
    "cursor": (
        {"paging": "cursor"},
        {"type": "cursor", "cursor_param": "cursor", "size_param": "limit", "page_size": 6, "next_cursor_path": "meta.next_cursor"},
    ),
    "stripe": (
        {},
        {
            "type": "cursor",
            "cursor_param": "starting_after",
            "cursor_record_field": "id",
            "has_more_path": "has_more",
            "size_param": "limit",
            "page_size": 10,
        },
    ),
    "link_header": ({"paging": "link"}, {"type": "link_header", "size_param": "per_page", "page_size": 4}),
}


@pytest.fixture(scope="module")
def api():
    with ApiServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _clear_log(api):
    api.requests.clear()
    api._failures.clear()


def config(api, *, style="stripe", resource="customers", token=None, **stream):
    params, paging = PAGING[style]
    entry = {
        "path": f"/v1/{resource}",
        "records_path": "" if style == "link_header" else "data",
        "primary_key": ["id"],
        "paging": paging,
        "params": params,
        "incremental": {"cursor_param": "updated_since", "cursor_field": "updated"},
    }
    entry.update(stream)
    return {
        "base_url": api.base_url,
        "api_key": token or api.token,
        "streams": {resource: entry},
        "max_retries": 3,
        "retry_backoff": 0.01,
        "timeout": 10,
    }


def read(source, stream="customers", **kw):
    return read_stream(source, stream, **kw)


@pytest.mark.parametrize("style", list(PAGING))
def test_each_paging_style_returns_every_record_once(api, style):
    table = read(HttpApiSource(config(api, style=style)))
    assert table.column("id").to_pylist() == [c["id"] for c in CUSTOMERS]
    assert table.column("balance").to_pylist() == [c["balance"] for c in CUSTOMERS]
    assert [json.loads(m) for m in table.column("metadata").to_pylist()] == [c["metadata"] for c in CUSTOMERS]
    pages = api.api_requests("customers")
    assert len(pages) >= (1 if style == "none" else 3)


def test_discover_schema_from_first_page(api):
    catalog = HttpApiSource(config(api, resource="charges")).discover()
    [entry] = catalog["streams"]
    assert entry["tap_stream_id"] == "charges" and entry["key_properties"] == ["id"]
    props = entry["schema"]["properties"]
    assert list(props) == list(CHARGES[0])
    assert props["amount"]["type"] == ["null", "integer"]
    assert props["paid"]["type"] == ["null", "boolean"]
    assert "object" in props["metadata"]["type"]
    md = entry["metadata"][0]["metadata"]
    assert md["valid-replication-keys"] == ["updated"] and md["table-key-properties"] == ["id"]
    table = read(HttpApiSource(config(api, resource="charges")), "charges")
    assert table.schema.field("metadata").metadata[LOGICAL_TYPE_KEY] == JSON_LOGICAL_TYPE
    assert table.schema.field("created").type == pa.int64()
    assert table.num_rows == len(CHARGES)
    assert table.column("description").to_pylist() == [c["description"] for c in CHARGES]


def test_records_path_nested_and_selected_columns(api):
    table = read(HttpApiSource(config(api, style="page")), columns=["name", "id", "tags"])
    assert table.schema.names == ["id", "name", "tags"]  # the stream's order
    assert table.slice(0, 2).to_pylist() == [
        {"id": c["id"], "name": c["name"], "tags": json.dumps(c["tags"], ensure_ascii=False)} for c in CUSTOMERS[:2]
    ]
    assert "Zoë Ångström" in table.column("name").to_pylist()


def test_bad_records_path_names_path_and_existing_keys(api):
    source = HttpApiSource(config(api, records_path="results.items"))
    with pytest.raises(ConfigError) as info:
        source.discover()
    text = str(info.value)
    assert "records_path 'results.items' does not exist" in text
    assert "'object', 'url', 'has_more', 'data'" in text and "stream 'customers'" in text


@pytest.mark.parametrize("style", ["stripe", "offset", "link_header"])
def test_incremental_sends_bookmark_filters_and_orders(api, style):
    bookmark = 1_704_067_200 + 4 * 86_400
    table = read(HttpApiSource(config(api, style=style)), method="INCREMENTAL", bookmark={"updated": bookmark}, columns=["id", "updated"])
    expected = sorted((c["updated"], c["id"]) for c in CUSTOMERS if c["updated"] >= bookmark)
    assert list(zip(table.column("updated").to_pylist(), table.column("id").to_pylist())) == expected
    assert any(u == bookmark for u, _ in expected)  # a record equal to the bookmark is returned
    schema_page, *sent = api.api_requests("customers")  # discovery reads the unfiltered first page
    assert "updated_since" not in schema_page
    assert sent and all(q["updated_since"] == str(bookmark) for q in sent)


def test_incremental_filters_even_when_api_ignores_the_parameter(api):
    bookmark = 1_704_067_200 + 7 * 86_400
    cfg = config(api, style="none", incremental={"cursor_param": "ignored_by_server", "cursor_field": "updated"})
    table = read(HttpApiSource(cfg), method="INCREMENTAL", bookmark={"updated": bookmark})
    assert table.column("id").to_pylist() == [
        c["id"] for c in sorted((c for c in CUSTOMERS if c["updated"] >= bookmark), key=lambda c: (c["updated"], c["id"]))
    ]
    assert api.api_requests("customers")[-1]["ignored_by_server"] == str(bookmark)


def test_a_bookmark_field_that_cannot_be_ordered_is_refused_by_name(api):
    with pytest.raises(ConfigError, match=r"bookmark column 'metadata' \(.*\) cannot be ordered, so cannot hold a bookmark") as err:
        read(HttpApiSource(config(api, style="none")), method="INCREMENTAL", bookmark_properties=["metadata"])
    assert err.value.stream == "customers" and "updated" in err.value.fix and "metadata" not in err.value.fix


def test_limit_stops_paging_early(api):
    table = read(HttpApiSource(config(api, style="page")), limit=7)
    assert table.column("id").to_pylist() == [c["id"] for c in CUSTOMERS[:7]]
    # schema page + two 5-record pages; never the remaining three pages
    assert [q["page"] for q in api.api_requests("customers")] == ["1", "1", "2"]


def test_bad_token_is_rejected_without_leaking_it(api):
    token = "sk_live_SUPERSECRET_abcdef123456"
    with pytest.raises(ConnectionFailed) as info:
        HttpApiSource(config(api, token=token)).discover()
    text = str(info.value)
    assert "credentials rejected" in text and "HTTP 401" in text
    assert token not in text and "SUPERSECRET" not in text and token not in repr(info.value)


def test_retries_503_then_succeeds(api):
    api.fail_next(2, 503)
    table = read(HttpApiSource(config(api, style="none")))
    assert table.num_rows == len(CUSTOMERS)
    assert len(api.api_requests("customers")) == 3 + 1  # schema page: 2 failures + success; then the read


def test_gives_up_after_max_retries(api):
    api.fail_next(10, 429)
    with pytest.raises(ConnectionFailed, match=r"kept failing GET /v1/customers \(HTTP 429\) after 3 retries"):
        HttpApiSource(config(api)).discover()


def test_connection_refused_names_host_and_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    cfg = {"base_url": f"http://127.0.0.1:{port}", "streams": {"x": {"path": "/x"}}, "max_retries": 0}
    with pytest.raises(ConnectionFailed, match=f"could not connect to 127.0.0.1:{port}: connection refused"):
        HttpApiSource(cfg).discover()


def test_non_json_response_and_404(api):
    with pytest.raises(ConfigError, match=r"GET /v1/html returned HTTP 200 with content type 'text/html; charset=utf-8', not JSON"):
        HttpApiSource(config(api, path="/v1/html")).discover()
    with pytest.raises(ConfigError, match=r"GET /v1/nothing returned HTTP 404"):
        HttpApiSource(config(api, path="/v1/nothing")).discover()


def test_config_errors():
    with pytest.raises(ConfigError, match="needs a `path`"):
        HttpApiSource({"base_url": "http://x", "streams": {"a": {}}})
    with pytest.raises(ConfigError, match="unknown paging type 'pages'"):
        HttpApiSource({"base_url": "http://x", "streams": {"a": {"path": "/a", "paging": {"type": "pages"}}}})
    assert SPEC.secret_fields() == ["api_key", "token"] and SPEC.source is HttpApiSource


def test_custom_auth_header_and_static_headers():
    with ApiServer(token=None) as open_api:
        cfg = {
            "base_url": open_api.base_url,
            "api_key": "k-123456789",
            "auth_header": "X-Api-Key",
            "auth_scheme": "",
            "headers": {"Stripe-Version": "2024-06-20"},
            "streams": {"charges": {"path": "/v1/charges", "records_path": "data", "params": {"paging": "none"}}},
        }
        table = read(HttpApiSource(cfg), "charges", columns=["id", "amount"])
        assert table.to_pylist() == [{"id": c["id"], "amount": c["amount"]} for c in CHARGES]
        _, _, headers = open_api.requests[-1]
        assert headers["X-Api-Key"] == "k-123456789" and headers["Stripe-Version"] == "2024-06-20"
        assert "Authorization" not in headers


def test_records_with_a_null_cursor_are_counted_or_resynced(api):
    """An API record without its cursor value cannot be compared with a bookmark: a read from a
    bookmark leaves it out and counts it (the run then says changes may be missed), or, with
    ``null_cursor: resync``, returns it every time."""
    api.data["items"] = [{"id": i, "updated": None if i % 4 == 0 else 1_700_000_000 + i} for i in range(1, 13)]
    cfg = config(api, style="none", resource="items", incremental={"cursor_param": "ignored_by_server", "cursor_field": "updated"})
    settings = StreamSettings(stream="items", replication_method="INCREMENTAL", bookmark_properties=["updated"], key_properties=["id"])
    request = ReadRequest(settings, bookmark={"updated": 1_700_000_006})
    table = HttpApiSource(cfg).read(request).read_all()
    assert table.column("id").to_pylist() == [6, 7, 9, 10, 11]
    assert request.stats["null_cursor_rows"] == 3
    settings.null_cursor = "resync"
    request = ReadRequest(settings, bookmark={"updated": 1_700_000_006})
    table = HttpApiSource(cfg).read(request).read_all()
    assert table.column("id").to_pylist() == [6, 7, 9, 10, 11, 4, 8, 12]  # NULL cursors sort last
    assert "null_cursor_rows" not in request.stats
