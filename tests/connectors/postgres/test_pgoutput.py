"""The pgoutput decoder on hand-built messages (the protocol manual's layouts), no server needed."""

from __future__ import annotations

import struct

import pytest

from jupyter_di.connectors.postgres import pgoutput as po


def tuple_data(*values) -> bytes:
    out = struct.pack("!h", len(values))
    for v in values:
        if v is None:
            out += b"n"
        elif v is po.UNCHANGED:
            out += b"u"
        else:
            out += b"t" + struct.pack("!i", len(v)) + v
    return out


def test_lsn_text_round_trip_and_order():
    assert po.parse_lsn("16/B374D848") == (0x16 << 32) | 0xB374D848
    assert po.format_lsn(po.parse_lsn("16/B374D848")) == "00000016/B374D848"
    assert po.parse_lsn(po.format_lsn(123456789)) == 123456789
    positions = [5, 0xFFFFFFFF, 1 << 32, (3 << 32) + 7]
    assert sorted(positions) == sorted(positions, key=po.format_lsn)  # text order is position order
    for bad in ("", "16", "x/y", "1/100000000", None):
        with pytest.raises(ValueError):
            po.parse_lsn(bad)  # type: ignore[arg-type]


def test_begin_commit():
    begin = po.decode(b"B" + struct.pack("!QqI", 0x1_0000_0010, 123_456, 42))
    assert begin == po.Begin(final_lsn=0x1_0000_0010, commit_time=123_456, xid=42)
    commit = po.decode(b"C" + b"\x00" + struct.pack("!QQq", 100, 180, 99))
    assert commit == po.Commit(commit_lsn=100, end_lsn=180, commit_time=99)
    assert po.pg_timestamp(0).isoformat() == "2000-01-01T00:00:00+00:00"


def test_relation():
    body = struct.pack("!I", 16388) + b"public\x00items\x00" + b"d" + struct.pack("!h", 2)
    body += b"\x01" + b"id\x00" + struct.pack("!Ii", 23, -1)
    body += b"\x00" + b"v\x00" + struct.pack("!Ii", 1043, 14)
    rel = po.decode(b"R" + body)
    assert isinstance(rel, po.Relation)
    assert (rel.oid, rel.namespace, rel.name, rel.replica_identity) == (16388, "public", "items", "d")
    assert rel.columns == (po.RelationColumn("id", 23, -1, True), po.RelationColumn("v", 1043, 14, False))
    # pg_catalog is sent as an empty namespace
    assert po.decode(b"R" + struct.pack("!I", 1) + b"\x00t\x00f" + struct.pack("!h", 0)).namespace == "pg_catalog"  # type: ignore[union-attr]


def test_insert_update_delete_tuples():
    ins = po.decode(b"I" + struct.pack("!I", 7) + b"N" + tuple_data(b"1", None, b"\xc3\xa9t\xc3\xa9"))
    assert ins == po.Insert(7, [b"1", None, "été".encode()])
    upd = po.decode(b"U" + struct.pack("!I", 7) + b"N" + tuple_data(b"1", po.UNCHANGED, b"x"))
    assert isinstance(upd, po.Update) and upd.old is None and upd.new[1] is po.UNCHANGED
    keyed = po.decode(b"U" + struct.pack("!I", 7) + b"K" + tuple_data(b"1", None, None) + b"N" + tuple_data(b"2", b"a", b"b"))
    assert isinstance(keyed, po.Update) and keyed.old_is_key and keyed.old == [b"1", None, None] and keyed.new == [b"2", b"a", b"b"]
    full = po.decode(b"U" + struct.pack("!I", 7) + b"O" + tuple_data(b"1", b"big", b"a") + b"N" + tuple_data(b"1", po.UNCHANGED, b"b"))
    assert isinstance(full, po.Update) and not full.old_is_key and full.old == [b"1", b"big", b"a"]
    dele = po.decode(b"D" + struct.pack("!I", 7) + b"K" + tuple_data(b"3", None, None))
    assert dele == po.Delete(7, [b"3", None, None], True)
    assert po.decode(b"U" + struct.pack("!I", 7) + b"N" + tuple_data()).new == []  # type: ignore[union-attr]


def test_truncate_origin_type_message_unknown():
    trunc = po.decode(b"T" + struct.pack("!IB", 2, 3) + struct.pack("!II", 10, 11))
    assert trunc == po.Truncate((10, 11), cascade=True, restart_identity=True)
    assert po.decode(b"O" + struct.pack("!Q", 5) + b"node\x00") == po.Origin(5, "node")
    assert po.decode(b"Y" + struct.pack("!I", 99) + b"public\x00mood\x00") == po.TypeInfo(99, "public", "mood")
    msg = po.decode(b"M" + b"\x01" + struct.pack("!Q", 8) + b"pfx\x00" + struct.pack("!i", 3) + b"abc")
    assert msg == po.LogicalMessage(True, 8, "pfx", b"abc")
    assert po.decode(b"S\x00\x00") == po.Unknown("S", b"S\x00\x00")


def test_broken_messages_are_decode_errors():
    with pytest.raises(po.DecodeError):
        po.decode(b"")
    with pytest.raises(po.DecodeError, match="truncated"):
        po.decode(b"I\x00\x00")
    with pytest.raises(po.DecodeError):
        po.decode(b"I" + struct.pack("!I", 7) + b"N" + struct.pack("!h", 1) + b"t" + struct.pack("!i", 10) + b"short")
    with pytest.raises(po.DecodeError, match="kind"):
        po.decode(b"I" + struct.pack("!I", 7) + b"N" + struct.pack("!h", 1) + b"?")
    with pytest.raises(po.DecodeError, match="new tuple"):
        po.decode(b"I" + struct.pack("!I", 7) + b"X")


def test_split_tuples_matches_decode_tuple():
    import numpy as np

    rows = [
        (b"1", None, b"abc", po.UNCHANGED),
        (b"22", b"", None, b"x" * 300),
        (b"333", "é".encode(), po.UNCHANGED, None),
    ]
    messages = [b"I" + struct.pack("!I", 7) + b"N" + tuple_data(*r) for r in rows]
    buffer = b"".join(messages)
    starts = np.cumsum([0] + [len(m) for m in messages[:-1]]) + 6
    columns = po.split_tuples(np.frombuffer(buffer, dtype=np.uint8), starts, 4)
    for c, (kinds, value_starts, lengths) in enumerate(columns):
        for r, row in enumerate(rows):
            expected = row[c]
            if expected is None:
                assert kinds[r] == po.KIND_NULL
            elif expected is po.UNCHANGED:
                assert kinds[r] == po.KIND_UNCHANGED
            else:
                assert kinds[r] == po.KIND_TEXT
                assert buffer[value_starts[r] : value_starts[r] + lengths[r]] == expected
    with pytest.raises(po.DecodeError, match="columns"):
        po.split_tuples(np.frombuffer(buffer, dtype=np.uint8), starts, 3)
    with pytest.raises(po.DecodeError, match="truncated"):
        po.split_tuples(np.frombuffer(buffer[:-5], dtype=np.uint8), starts, 4)
