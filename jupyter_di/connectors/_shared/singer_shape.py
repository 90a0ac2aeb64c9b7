"""One Singer stream's shape as its SCHEMA messages evolve it, and the checks on its records.

Why a module of its own: a Singer stream is described by SCHEMA messages that may come again at any
point (new properties, wider types, other key properties), and both ends of jupyter-di that read
Singer messages (a tap as a ``source: singer``, stdin of ``jupyter-di target``) must treat them the
same way:

- **new properties** become new columns when ``auto_add_new_fields`` (the default), else one error
  names them all; properties a later SCHEMA leaves out stay (their values are NULL from there on);
- **a changed type** is widened as the destinations widen a database source's column: integers stay
  64-bit integers, integer and number become number, anything else mixed becomes text (JSON
  objects/arrays stay JSON text);
- **key properties** come from the stream settings (the YAML) when given, else from the tap's SCHEMA,
  else from the catalog; a SCHEMA that changes them before any record is applied, after records
  it is refused (rows already read were keyed on the old ones);
- **records** must carry a value for every key property (one error naming the stream and the
  record's position); with ``validate_records`` each record is checked against the stream's JSON
  schema, and the first ``MAX_REPORTED_FAILURES`` failures are reported together.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

from ...errors import SchemaMismatch
from ..base import is_json_field, json_field
from ..catalog import arrow_field_for_property

MAX_REPORTED_FAILURES = 5
"""``validate_records`` stops at this many invalid records and reports them together."""


class StreamShape:
    """The Arrow schema, key properties and record checks of one Singer stream."""

    def __init__(
        self,
        stream: str,
        *,
        columns: Iterable[str] | None = None,
        key_properties: Iterable[str] = (),
        catalog_entry: Mapping[str, Any] | None = None,
        auto_add_new_fields: bool = True,
        validate_records: bool = False,
    ) -> None:
        self.stream = stream
        self.columns = list(columns) if columns is not None else None
        self.keys_from_settings = list(key_properties)
        self.catalog_entry = catalog_entry or {}
        self.auto_add_new_fields = auto_add_new_fields
        self.validate_records = validate_records
        self.schema: pa.Schema | None = None
        self.keys: list[str] = list(self.keys_from_settings)
        self.records = 0
        """Records of this stream seen so far (the position of the last one, counted from 1)."""
        self._validator: Any = None
        self._failures: list[str] = []

    # ---- SCHEMA messages

    def update(self, message: Mapping[str, Any] | None) -> bool:
        """Apply a SCHEMA message (None: only the catalog's); True when the Arrow schema changed."""
        json_schema = (message or {}).get("schema") or {}
        props = json_schema.get("properties") if isinstance(json_schema, Mapping) else None
        if not props and self.schema is None:
            props = (self.catalog_entry.get("schema") or {}).get("properties")
            json_schema = self.catalog_entry.get("schema") or {}
        if not isinstance(props, Mapping) or not props:
            raise SchemaMismatch(
                f"the SCHEMA of stream {self.stream!r} declares no properties, so no column can be made of it.",
                stream=self.stream,
                fix="the tap must send a JSON schema with `properties` for every stream (this is a bug in the tap).",
            )
        if message is not None:
            self._update_keys(message)
        if self.validate_records:
            self._validator = _validator(json_schema, self.stream)
        fields = [arrow_field_for_property(n, dict(p) if isinstance(p, Mapping) else {}) for n, p in props.items()]
        if self.columns is not None:
            wanted = set(self.columns)
            fields = [f for f in fields if f.name in wanted]
        if self.schema is None:
            self.schema = pa.schema(fields)
            return True
        old = {f.name: i for i, f in enumerate(self.schema)}
        merged = list(self.schema)
        new = [f for f in fields if f.name not in old]
        if new and not self.auto_add_new_fields:
            raise SchemaMismatch(
                f"stream {self.stream!r} got new propert{'ies' if len(new) > 1 else 'y'} "
                f"{', '.join(repr(f.name) for f in new)} in a SCHEMA after {self.records} record(s).",
                stream=self.stream,
                fix="set auto_add_new_fields: true to add them as columns, or list the stream's `columns:` to leave them out.",
            )
        for f in fields:
            if f.name in old:
                merged[old[f.name]] = widened(merged[old[f.name]], f)
        merged += new
        schema = pa.schema(merged)
        changed = not schema.equals(self.schema, check_metadata=True)
        self.schema = schema
        return changed

    def _update_keys(self, message: Mapping[str, Any]) -> None:
        if self.keys_from_settings or "key_properties" not in message:
            return
        keys = [str(k) for k in message.get("key_properties") or []]
        if self.schema is None or not self.records:
            self.keys = keys
            return
        if keys != self.keys:
            raise SchemaMismatch(
                f"stream {self.stream!r} changed its key properties from {self.keys} to {keys} after {self.records} "
                "record(s); the rows before were keyed on the old ones, so neither key holds for the whole stream.",
                stream=self.stream,
                fix="set key_properties in the stream's settings to the key the destination should keep one row per.",
            )

    def initial_keys(self) -> None:
        """Without settings or a SCHEMA saying so, the catalog's key properties."""
        if not self.keys and not self.keys_from_settings:
            self.keys = [str(k) for k in self.catalog_entry.get("key_properties") or []]

    # ---- RECORD messages

    def check(self, record: Mapping[str, Any]) -> None:
        """Count the record; refuse one without a key value; validate it when asked."""
        self.records += 1
        for key in self.keys:
            if record.get(key) is None:
                raise SchemaMismatch(
                    f"record {self.records:,} of stream {self.stream!r} has no value for its key property {key!r} "
                    f"(keys: {', '.join(self.keys)}); it cannot be written once per key.",
                    stream=self.stream,
                    fix="fix the tap so every record carries its key, or set key_properties for the stream to other columns.",
                )
        if self._validator is not None:
            errors = list(self._validator.iter_errors(record))
            if errors:
                first = min(errors, key=lambda e: list(e.absolute_path))
                where = "/".join(str(p) for p in first.absolute_path) or "(record)"
                self._failures.append(f"record {self.records:,}: {where}: {first.message[:200]}")
                if len(self._failures) >= MAX_REPORTED_FAILURES:
                    self.finish()

    def check_batch(self, batch: pa.RecordBatch) -> None:
        """``check`` for a batch of records (no validation: the caller parses only without it)."""
        for key in self.keys:
            index = batch.schema.get_field_index(key)
            column = batch.column(index) if index >= 0 else pa.nulls(batch.num_rows)
            if column.null_count:
                import pyarrow.compute as pc

                self.records += int(pc.index(column.is_null(), True).as_py())
                self.check({})  # the record without its key: the same error, at its position
        self.records += batch.num_rows

    def finish(self) -> None:
        """Raise the validation failures collected (called at the stream's end)."""
        if self._failures:
            failures, self._failures = self._failures, []
            raise SchemaMismatch(
                f"stream {self.stream!r} has records that do not match its JSON schema (validate_records: true); "
                f"the first {len(failures)}:\n  " + "\n  ".join(failures),
                stream=self.stream,
                fix="fix the tap's SCHEMA or its records, or set validate_records: false to load them as they come.",
            )


def widened(old: pa.Field, new: pa.Field) -> pa.Field:
    """The field that holds both ``old``'s and ``new``'s values (the name and place of ``old``)."""
    if old.type.equals(new.type) and is_json_field(old) == is_json_field(new):
        return old
    a, b = old.type, new.type
    if is_json_field(old) or is_json_field(new):
        return json_field(old.name)
    if pa.types.is_integer(a) and pa.types.is_integer(b):
        return pa.field(old.name, pa.int64())
    if (pa.types.is_integer(a) or pa.types.is_floating(a)) and (pa.types.is_integer(b) or pa.types.is_floating(b)):
        return pa.field(old.name, pa.float64())
    if pa.types.is_timestamp(a) and pa.types.is_timestamp(b):
        return pa.field(old.name, pa.timestamp("us", tz="UTC"))
    return pa.field(old.name, pa.string())


def cast_to(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """``batch`` under ``schema``: missing columns NULL, widened ones cast (schema metadata kept)."""
    if batch.schema.equals(schema, check_metadata=False):
        return batch if batch.schema.metadata == schema.metadata else pa.RecordBatch.from_arrays(batch.columns, schema=schema)
    index = {n: i for i, n in enumerate(batch.schema.names)}
    arrays = []
    for f in schema:
        i = index.get(f.name)
        if i is None:
            arrays.append(pa.nulls(batch.num_rows, f.type))
            continue
        col = batch.column(i)
        arrays.append(col if col.type.equals(f.type) else _cast(col, f.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema.with_metadata(batch.schema.metadata))


def _cast(col: pa.Array, to: pa.DataType) -> pa.Array:
    if pa.types.is_string(to) and pa.types.is_boolean(col.type):
        import pyarrow.compute as pc

        return pc.if_else(col, "true", "false")
    return col.cast(to)


def _validator(json_schema: Mapping[str, Any], stream: str) -> Any:
    import jsonschema  # type: ignore[import-untyped]

    try:
        cls = jsonschema.validators.validator_for(json_schema, default=jsonschema.Draft7Validator)
        cls.check_schema(json_schema)
    except jsonschema.SchemaError as exc:
        raise SchemaMismatch(
            f"the SCHEMA of stream {stream!r} is not a valid JSON schema, so records cannot be validated: {exc.message[:200]}",
            stream=stream,
            fix="fix the tap's SCHEMA, or set validate_records: false.",
        ) from None
    return cls(json_schema, format_checker=cls.FORMAT_CHECKER)
