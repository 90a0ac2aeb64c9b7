"""The connector contract: what every source and destination implements.

Why a contract of its own: panels, docs, the CLI and the sync engine are all
generated from, or driven through, these few types, so a new system (built in,
a Singer tap/target, or a third-party package registered through the
``jupyter_di.connectors`` entry point group) plugs in by implementing them.

Data between connectors is Arrow: a source yields ``pyarrow.RecordBatch``es
through a ``pyarrow.RecordBatchReader`` (so an empty stream still has a schema),
a destination consumes ``Chunk``s (a batch plus the state that is true once the
batch is committed).

Logical types that Arrow has no native type for travel as Arrow field metadata
under the key ``LOGICAL_TYPE_KEY``: ``b"json"`` marks a string column holding
JSON text (PostgreSQL json/jsonb), so a destination can create a JSON column.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar

import pyarrow as pa

LOGICAL_TYPE_KEY = b"jupyter_di.logical_type"
JSON_LOGICAL_TYPE = b"json"


def is_json_field(field: pa.Field) -> bool:
    """A column holding JSON text (marked with the JSON logical type, e.g. PostgreSQL json/jsonb)."""
    return (field.metadata or {}).get(LOGICAL_TYPE_KEY) == JSON_LOGICAL_TYPE


def json_field(name: str, data_type: pa.DataType | None = None) -> pa.Field:
    """A field marked as holding JSON text (a string column unless ``data_type`` says otherwise)."""
    return pa.field(name, pa.string() if data_type is None else data_type, metadata={LOGICAL_TYPE_KEY: JSON_LOGICAL_TYPE})


SOURCE_STATE_KEY = b"jupyter_di.source_state"
"""Schema metadata a source may put on a yielded batch: JSON text of the source's *own* state (a
Singer tap's STATE message, verbatim) that holds once this batch and every batch before it are
delivered.  It travels on the batch itself so read-ahead threads cannot reorder it; the sync engine
strips it before the batch is spilled and commits it with the rows, and the next read gets it back
as ``ReadRequest.source_state``."""

BOOKMARK_STATE_KEY = b"jupyter_di.bookmark_state"
"""Schema metadata a source may put on a yielded batch: JSON ``{"bookmark": ...}``, the bookmark that
holds once this batch and every batch before it are delivered, for a read whose batches are not in
bookmark order (parts of a partitioned read interleave: ``connectors/postgres/partitions.py``).  The
spill then takes it instead of the batch's last row; ``{"bookmark": null}`` means no bookmark holds yet."""

CHANGE_OP_COLUMN = "_jupyter_di_op"
"""A *change stream* (LOG_BASED) carries, besides the table's columns, these three; a destination
applies its rows in order (``Destination.applies_changes``).  The op is ``insert`` or ``update``
(upsert the row on the key), ``delete`` (only the key columns are set: the row goes, or is marked,
see ``DELETE_MODES``) or ``truncate`` (no row: every row of the table goes, or is marked)."""
CHANGE_TIME_COLUMN = "_jupyter_di_commit_time"
"""When the change committed at the source (UTC): the time a soft delete records."""
CHANGE_UNCHANGED_COLUMN = "_jupyter_di_unchanged"
"""The columns an update left as they were without sending them (PostgreSQL's unchanged TOASTed
values): the destination keeps its value there (NULL: every column was sent)."""
CHANGE_COLUMNS = (CHANGE_OP_COLUMN, CHANGE_TIME_COLUMN, CHANGE_UNCHANGED_COLUMN)
DELETED_AT_COLUMN = "_di_deleted_at"
"""The column a soft delete sets (timestamptz; NULL while the row exists at the source)."""
DELETE_MODES = ("soft", "hard")


def change_fields() -> list[pa.Field]:
    """The change columns' fields, in order (appended after the table's columns)."""
    return [
        pa.field(CHANGE_OP_COLUMN, pa.string(), nullable=False),
        pa.field(CHANGE_TIME_COLUMN, pa.timestamp("us", tz="UTC")),
        pa.field(CHANGE_UNCHANGED_COLUMN, pa.list_(pa.string())),
    ]


def is_change_stream(schema: pa.Schema) -> bool:
    """Whether batches of this schema are changes to apply, not rows to write."""
    return CHANGE_OP_COLUMN in schema.names


PartJob = Callable[[], Iterator[pa.RecordBatch]]
"""One part of a split read, as a picklable zero-argument callable that yields the part's batches."""
PartRunner = Callable[[list[PartJob]], Iterator[tuple[int, Iterator[pa.RecordBatch]]]]
"""Runs the parts of a split read elsewhere (the Dask executor: one task per part) and gives each part's
batches, by the part's index in the list, as parts complete."""
_part_runner: PartRunner | None = None


def set_part_runner(runner: PartRunner | None) -> None:
    """Where the parts of split reads run in this process (None: threads of the reading process)."""
    global _part_runner
    _part_runner = runner


def part_runner() -> PartRunner | None:
    return _part_runner


INTERNAL_PREFIX = "_jupyter_di_"
"""Names of jupyter-di's own objects in a destination (state table, staging tables) start with
this; a destination table named so is refused, so a user's table can never be taken for one."""

STATE_TABLE = f"{INTERNAL_PREFIX}state"
"""The table in which a transactional destination commits each stream's state with its rows."""


def internal_name(kind: str, *parts: str) -> str:
    """The name of one of our own objects (a staging table, an index): the reserved prefix, the kind,
    and a hash of what it belongs to, so it is short enough for any engine (PostgreSQL: 63 bytes)."""
    import hashlib

    digest = hashlib.sha1("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{INTERNAL_PREFIX}{kind}_{digest}"


def check_table_name(table: str, *, stream: str, block: str | None = None) -> None:
    """Refuse a destination table that could be taken for one of our own objects."""
    from ..errors import ConfigError  # noqa: TID252 - errors is a leaf module

    if table.lower().startswith(INTERNAL_PREFIX):
        raise ConfigError(
            f"destination table {table!r} starts with {INTERNAL_PREFIX!r}, which is reserved for jupyter-di's own "
            "tables (bookmark state, staging): writing there could destroy other streams' state.",
            block=block,
            stream=stream,
            fix="set destination_table to another name.",
        )


NULL_CURSOR_MODES = ("report", "resync", "ignore")
"""What an INCREMENTAL read does with rows whose bookmark column is NULL (they cannot be compared
with a bookmark): ``report`` (default) reads them on the first sync and counts them in every run's
report, and the run says that changes to them may be missed; ``resync`` re-reads them every run
(upserted on the keys); ``ignore`` is ``report`` without the warning (the user accepts it)."""

FULL_TABLE = "FULL_TABLE"
INCREMENTAL = "INCREMENTAL"
LOG_BASED = "LOG_BASED"
REPLICATION_METHODS = (FULL_TABLE, INCREMENTAL, LOG_BASED)
UNIQUE_CONFLICT_METHODS = ("UPDATE", "IGNORE")

FieldType = Literal["string", "integer", "number", "boolean", "path", "object", "array"]


@dataclass(frozen=True)
class ConfigField:
    """One config key of a connector; panels and docs are generated from these."""

    name: str
    type: FieldType = "string"
    required: bool = False
    default: Any = None
    secret: bool = False
    description: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] = ()
    """Allowed values (checked with the type before anything connects, ``connectors/config_check.py``)."""


@dataclass
class StreamSettings:
    """The user's choices for one stream (the spec's stream settings).

    The same settings object describes the read side (columns, replication
    method, bookmark properties) and the write side (destination table, unique
    constraints, conflict method, new-column policy).
    """

    stream: str
    columns: list[str] | None = None
    replication_method: str = FULL_TABLE
    key_properties: list[str] = field(default_factory=list)
    bookmark_properties: list[str] = field(default_factory=list)
    unique_constraints: list[str] = field(default_factory=list)
    unique_conflict_method: str = "UPDATE"
    destination_table: str | None = None
    run_in_parallel: bool = False
    auto_add_new_fields: bool = True
    append_only: bool = False
    """INCREMENTAL without a key: rows tied with the bookmark are read again and appended again
    (duplicates at ties, accepted explicitly).  Without it a keyless INCREMENTAL stream is refused."""
    null_cursor: str = "report"
    """See ``NULL_CURSOR_MODES``."""
    delete_mode: str = "soft"
    """LOG_BASED: a delete at the source sets ``DELETED_AT_COLUMN`` (soft) or removes the row (hard)."""
    partitions: int | str | None = None
    """Read the stream as this many snapshot-consistent parts at once, or ``auto`` (sources that can
    split a table: PostgreSQL, ``connectors/postgres/partitions.py``); None or 1: one query."""
    validate_records: bool = False
    """Check each record against the stream's JSON schema (Singer streams); off by default for speed."""
    column_types: dict[str, str] = field(default_factory=dict)
    """Destination column types that replace the mapped ones when the table or the column is created
    (``{amount: "decimal(18,2)"}``, ``connectors/_shared/column_types.py``); destinations with
    ``Destination.takes_column_types`` only."""

    @property
    def table_name(self) -> str:
        """The destination table: ``destination_table`` or the stream name."""
        return self.destination_table or self.stream


@dataclass
class ReadRequest:
    """What to read of one stream.

    ``bookmark`` is an inclusive lower bound on the tuple of
    ``settings.bookmark_properties`` (``(b1, b2) >= (v1, v2)``), given as JSON
    values (timestamps as ISO-8601 strings, decimals as strings).  When the
    stream is INCREMENTAL the source must yield rows ordered by the bookmark
    properties and then the key properties; where it pages, by keyset from the
    last row, never OFFSET.  The SQL sources stream one ordered query instead
    (one snapshot, no per-page cost); a resumed run starts from the last
    checkpoint's bookmark, which is the keyset.
    ``limit`` caps the rows (sample data); ``None`` reads everything.
    """

    settings: StreamSettings
    bookmark: dict[str, Any] | None = None
    batch_size: int = 65_536
    limit: int | None = None
    source_state: Any = None
    """The source's own state committed by the last sync (``SOURCE_STATE_KEY``), verbatim."""
    state_key: str | None = None
    """Names the (pipeline, block, stream) whose state this read continues: a source that keeps state
    on its server (a replication slot) derives that object's name from it."""
    bookmark_from_user: bool = False
    """``bookmark`` was typed by a user (a one-run override or a pinned value), not saved by a sync:
    a source with its own state rewrites just the fields the bookmark names."""
    stats: dict[str, Any] = field(default_factory=dict)
    """Filled in by the source while reading: ``null_cursor_rows`` = rows at the source whose
    bookmark column is NULL (for the run's report), where the source can count them; ``warnings`` =
    sentences for the run's report about changes this read may have missed (the run then exits 3)."""


@dataclass
class Chunk:
    """A batch to write, and the stream state that holds once it is committed."""

    batch: pa.RecordBatch
    state: dict[str, Any] | None = None


@dataclass
class WriteRequest:
    """Where and how to write one stream.

    ``state_key`` names the (pipeline, source block, stream, destination block)
    whose state a transactional destination stores in its own state table
    inside the same transaction as the rows.  FULL_TABLE replaces the table's rows atomically;
    otherwise rows are appended, or upserted on ``unique_constraints`` with
    ``unique_conflict_method``.
    """

    settings: StreamSettings
    schema: pa.Schema
    state_key: str | None = None
    dropped_columns: list[str] = field(default_factory=list)
    """Columns the stream had at its previous sync and no longer has (dropped at the
    source): an upserted row gets NULL there, so it equals the source row.  Other
    table columns the stream never sent are left alone."""


@dataclass(frozen=True)
class TableColumn:
    """One column of an existing destination table, its type as the destination's catalog spells it."""

    name: str
    type: str


@dataclass
class WriteResult:
    rows_written: int = 0
    state: dict[str, Any] | None = None


CommitCallback = Callable[[int, "dict[str, Any] | None"], None]
"""Called after each durable commit with (rows committed so far, state committed)."""


@dataclass(frozen=True)
class CopyColumn:
    """One column of a stream offered as PostgreSQL binary COPY data: its type as ``format_type()`` spells it."""

    name: str
    sql_type: str


@dataclass(frozen=True)
class PostgresTable:
    """Where a stream offered as binary COPY data lives, for a destination that reads PostgreSQL
    itself (DuckDB's ``postgres`` extension: ``connectors/duckdb/postgres_scan.py``) instead of taking
    the bytes.  Offered only where such a reader sees the rows ``Source.read`` would: a primary
    server (a parallel scan shares one exported snapshot) whose encoding is not SQL_ASCII."""

    conninfo: str
    """A libpq keyword/value string without the password."""
    password: str = field(repr=False)
    schema: str = ""
    name: str = ""


class BinaryCopy(ABC):
    """A stream offered as PostgreSQL binary COPY data (``COPY ... TO STDOUT (FORMAT binary)``: header,
    rows, trailer), so a destination that stores the same column types takes the bytes as they are,
    with nothing decoded into Arrow and encoded again (``Source.binary_copy``,
    ``Destination.write_binary_copy``, ``sync.engine.sync_stream``).  Offered only where the bytes mean
    what the Arrow batches of ``Source.read`` would (the PostgreSQL source: FULL_TABLE, built-in types)."""

    columns: list[CopyColumn]
    schema: pa.Schema
    """The Arrow schema ``Source.read`` gives for the same read (the types a new table gets)."""
    rows: int | None = None
    """The rows the source sent, once ``chunks`` is exhausted (its server's own count), or the rows a
    destination that read ``table`` itself took."""
    table: PostgresTable | None = None
    """The table the COPY reads (FULL_TABLE: every row of ``columns``), for a destination that reads
    PostgreSQL itself; None where only the bytes are offered."""

    @abstractmethod
    def chunks(self) -> Iterator[bytes]:
        """The COPY data in pieces of about a megabyte; starts the read, so call it at most once."""

    @abstractmethod
    def close(self) -> None:
        """Stop the read (a destination that did not take it, or stopped); safe to call twice."""

    def read_failed(self, exc: BaseException) -> None:
        """A destination that read ``table`` itself says the read failed on the source's side (so the
        source's block is the one that failed, as when ``chunks`` raises)."""
        return None  # only a hand-over between two blocks (integration/pass_through.py) records it


_ConnectorT = TypeVar("_ConnectorT", bound="Connector")


class Connector:
    """Shared life cycle: built from a config dict, closed when done."""

    name: ClassVar[str] = ""
    config_schema: ClassVar[list[ConfigField]] = []

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def check(self) -> None:
        """Test the connection; raise ``ConnectionFailed`` with one clear message."""

    def close(self) -> None:
        """Release connections; safe to call twice."""

    def __enter__(self: _ConnectorT) -> _ConnectorT:  # `with Source(...) as s` keeps s a Source
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Source(Connector, ABC):
    """Reads streams as Arrow record batches."""

    log_based: ClassVar[bool] = False
    """Whether ``read`` serves LOG_BASED streams: their first read is the table's rows, later ones
    change rows (``CHANGE_COLUMNS``) from the position in ``request.bookmark`` (``BOOKMARK_STATE_KEY``)."""

    unsplit_reason: ClassVar[str | None] = "read as one query: only PostgreSQL sources split a read"
    """Why a ``partitions:`` setting reads as one query here (the run report's note); None for a
    source that splits reads itself (PostgreSQL)."""

    @abstractmethod
    def discover(self, streams: list[str] | None = None) -> dict[str, Any]:
        """Return a Singer catalog ``{"streams": [...]}`` (only ``streams`` if given)."""

    @abstractmethod
    def read(self, request: ReadRequest) -> pa.RecordBatchReader:
        """Stream the selected columns of one stream, with bounded memory."""

    def binary_copy(self, request: ReadRequest) -> BinaryCopy | None:
        """The same read as PostgreSQL binary COPY data, where this source can offer it (None: read)."""
        return None

    def release_state(self, stream: str, source_state: Any) -> str | None:
        """Free what a stream's saved state holds on the source's server (a replication slot), when the
        state is reset; a sentence saying what was freed, or None."""
        return None

    def describe_state(self, stream: str, source_state: Any) -> dict[str, Any] | None:
        """What a stream's saved state holds on the server, for ``jupyter-di state show`` (a slot's
        position and retained WAL), or None."""
        return None

    def missing_streams(self, streams: list[str]) -> list[str]:
        """Which of ``streams`` the source does not have, checked before the first is read (so a typo
        in the second stream does not leave the first one written).  Sources whose discovery is costly
        (an API that must be called, a tap's ``--discover``) override this with a cheaper answer, or
        return [] to leave the check to ``read``."""
        from .catalog import find_stream  # catalog.py builds on this module

        catalog = self.discover(list(streams))
        return [s for s in streams if find_stream(catalog, s) is None]

    @classmethod
    def default_bookmark_properties(cls, stream: str) -> list[str]:
        """The bookmark properties an INCREMENTAL ``stream`` takes when its block names none: ``[]`` (the
        block must name them) unless the source keeps its own replication key, as Singer taps declare
        with ``forced-replication-method``/``valid-replication-keys`` (Stripe: the event cursor).
        A class method: the YAML is checked with it before anything connects."""
        return []


class Destination(Connector, ABC):
    """Writes Arrow record batches into a stream's table."""

    transactional: ClassVar[bool] = False
    """True when rows and state can be committed in one transaction."""
    applies_changes: ClassVar[bool] = False
    """True when ``write`` applies change streams (``is_change_stream``): upserts on
    ``unique_constraints`` that keep the table's value where a change lists a column as unchanged,
    deletes of keys (``settings.delete_mode``) and truncates.  A change stream for a destination
    without it is refused before anything is written."""
    stores_infinity: ClassVar[bool] = False
    """True when infinite dates and timestamps (``_shared/infinity.py``) arrive as infinity; for every
    other destination the engine refuses a batch holding one (naming the column) before it is written."""
    report_warnings: Sequence[dict[str, Any]] = ()
    """Lines for the run report after a ``write``: ``{"skipped": bool, "message": str}``.  ``skipped`` lines
    are rows left out without failing the write (Salesforce's rejected rows within ``max_rejected_rows``):
    whoever runs the destination shows them and does not call the run complete (a pipeline run and
    ``jupyter-di target`` both exit 3)."""

    @abstractmethod
    def write(
        self,
        request: WriteRequest,
        chunks: Iterable[Chunk],
        on_commit: CommitCallback | None = None,
    ) -> WriteResult:
        """Write all chunks; call ``on_commit`` after every durable commit."""

    def write_binary_copy(self, request: WriteRequest, copy: BinaryCopy, on_commit: CommitCallback | None = None) -> WriteResult | None:
        """Write a stream offered as PostgreSQL binary COPY data as it is, with ``write``'s guarantees;
        None, before anything of ``copy`` is read, when this destination cannot (then ``write`` it)."""
        return None

    splits_reads_itself: ClassVar[bool] = False
    """``write_binary_copy`` reads a passed-through table itself, in parallel parts (DuckDB's postgres
    scanner): a ``partitions: auto`` stream is then better passed to it whole than split into Dask tasks."""

    @classmethod
    def takes_binary_copy(cls) -> bool:
        """Whether ``write_binary_copy`` can take a stream on this machine at all (the pipeline pairs a
        source block with its reader on it: ``pipeline/fusion.py``)."""
        return cls.write_binary_copy is not Destination.write_binary_copy

    takes_column_types: ClassVar[bool] = False
    """Whether ``write`` creates (and adds) columns with ``StreamSettings.column_types`` instead of the
    mapped types; overrides for a destination without it are refused before anything is written."""

    def column_type(self, field: pa.Field) -> str | None:
        """The column type ``write`` would create for ``field`` (None: this destination cannot say)."""
        return None

    def describe_table(self, table: str) -> list[TableColumn] | None:
        """The existing ``table``'s columns in table order, or None when there is no such table; for the
        panel's schema-conflict view.  Raises NotImplementedError where the destination cannot say."""
        raise NotImplementedError

    def new_columns_refused(self, settings: StreamSettings, names: list[str]) -> Exception:
        """The error ``write`` raises for stream columns the table lacks when ``auto_add_new_fields`` is
        false (the schema-conflict view shows it before the run)."""
        from ..errors import SchemaMismatch  # noqa: TID252 - errors is a leaf module

        return SchemaMismatch(
            f"table {settings.table_name!r} has no column(s) {', '.join(repr(n) for n in names)}.",
            stream=settings.stream,
            fix="set auto_add_new_fields: true, or deselect these columns.",
        )

    def check_column_types(self, types: dict[str, str], *, stream: str) -> None:
        """Refuse an override the engine cannot parse (``column_types.unparsable``), before anything is written."""

    def load_state(self, state_key: str) -> dict[str, Any] | None:
        """The state committed with the rows (transactional destinations only)."""
        return None

    def clear_state(self, state_key: str) -> None:
        """Forget the committed state for ``state_key`` (a reset)."""


@dataclass(frozen=True)
class ConnectorSpec:
    """What the registry knows of one connector name (an entry point's target)."""

    name: str
    title: str
    config_schema: list[ConfigField]
    source: type[Source] | None = None
    destination: type[Destination] | None = None
    description: str = ""

    def secret_fields(self) -> list[str]:
        return [f.name for f in self.config_schema if f.secret]
