"""Both databases compared object by object; every difference is listed, none is summarised away.

Compared: per table (and per partition, and per materialized view) the row count and an order-independent content
checksum; sequences (``last_value``, ``is_called``); extensions (name, version); large objects (count, and the md5
of each one's ``lo_get``); view and materialized-view definitions (``pg_get_viewdef``); partitions' parents and
bounds; enums' labels in order.

The checksum of a table is the row count plus the exact sum of the first 64 bits of ``md5(row::text)`` over its
rows: independent of row order (no sort, one pass, constant memory, so it scales to big tables), and changed by
any edit to any row (but for odds of about 2^-64). md5 rather than PostgreSQL's faster ``hashtextextended``:
the built-in hash functions are an implementation detail that has changed between major versions (8.3 -> 8.4),
and a migration may cross one. ``row::text`` depends on output settings, so both sides run with the same
``SESSION_SETTINGS`` (``connection.py``). Only ``ONLY`` each table's own rows are read: a partitioned table is
checked partition by partition, an inheritance parent apart from its children.

Objects that belong to an extension (``pg_depend`` type ``e``) are the extension's, compared through its version.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from phasekit.db.connection import Endpoint, Session, quote_literal

_USER_SCHEMAS = ("n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' "
                 "AND n.nspname NOT LIKE 'pg\\_temp\\_%'")
_NOT_IN_EXTENSION = ("NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass "
                     "AND d.objid = c.oid AND d.deptype = 'e')")

RELATIONS_SQL = f"""
SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS name, c.relkind AS kind,
       c.relispopulated AS populated,
       (SELECT quote_ident(pn.nspname) || '.' || quote_ident(p.relname) FROM pg_inherits i
          JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = p.relnamespace
          WHERE i.inhrelid = c.oid AND c.relispartition) AS partition_of,
       CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END AS bound,
       CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END AS definition
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S') AND {_USER_SCHEMAS} AND {_NOT_IN_EXTENSION}
"""
EXTENSIONS_SQL = "SELECT extname AS name, extversion AS version FROM pg_extension"
LARGE_OBJECTS_SQL = "SELECT oid::text AS oid, md5(lo_get(oid)) AS md5 FROM pg_largeobject_metadata"
ENUMS_SQL = """
SELECT format_type(t.oid, NULL) AS name, json_agg(e.enumlabel ORDER BY e.enumsortorder) AS labels
FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid GROUP BY t.oid
"""

KIND_NAMES = {"r": "table", "p": "partitioned table", "v": "view", "m": "materialized view", "S": "sequence"}


def content_sql(name: str) -> str:
    """Row count and order-independent checksum of ``name``'s own rows (``name`` comes quoted from the catalog)."""
    # sum(bigint) accumulates in 128 bits and returns numeric: exact, no overflow. One 64-bit half of each md5
    # (the hex-to-bigint cast is the costly part), so an accidental change escapes with odds of about 2^-64.
    return ("SELECT count(*) || ' ' || coalesce(sum(('x' || left(md5(t::text), 16))::bit(64)::bigint), 0) "
            f"FROM ONLY {name} t")


@dataclass(frozen=True)
class Relation:
    name: str
    kind: str
    populated: bool
    partition_of: str | None
    bound: str | None
    definition: str | None

    @property
    def label(self) -> str:
        if self.partition_of:
            return f"partition {self.name} of {self.partition_of}"
        return f"{KIND_NAMES[self.kind]} {self.name}"

    @property
    def has_rows(self) -> bool:
        return self.kind in ("r", "m") and self.populated


@dataclass(frozen=True)
class Inventory:
    """One side's objects, and the content of those that hold rows."""

    relations: dict[str, Relation]
    sequences: dict[str, tuple[str, bool]]
    extensions: dict[str, str]
    large_objects: dict[str, str]
    enums: dict[str, list[str]]
    contents: dict[str, tuple[int, str]] = field(default_factory=dict)
    """Relation name -> (rows, checksum)."""


@dataclass(frozen=True)
class Verification:
    differences: tuple[str, ...]
    summary: str

    @property
    def ok(self) -> bool:
        return not self.differences


def inventory(session: Session, side: Endpoint) -> Inventory:
    relations = {row["name"]: Relation(**row) for row in session.rows(side, RELATIONS_SQL)}
    sequence_names = sorted(name for name, relation in relations.items() if relation.kind == "S")
    sequences: dict[str, tuple[str, bool]] = {}
    if sequence_names:
        union = " UNION ALL ".join(f"SELECT {quote_literal(name)} AS name, last_value::text AS last_value, is_called "
                                   f"FROM {name}" for name in sequence_names)
        sequences = {row["name"]: (row["last_value"], row["is_called"]) for row in session.rows(side, union)}
    return Inventory(
        relations=relations, sequences=sequences,
        extensions={row["name"]: row["version"] for row in session.rows(side, EXTENSIONS_SQL)},
        large_objects={row["oid"]: row["md5"] for row in session.rows(side, LARGE_OBJECTS_SQL)},
        enums={row["name"]: row["labels"] for row in session.rows(side, ENUMS_SQL)})


def verify_databases(session: Session, source: Endpoint, target: Endpoint, *, jobs: int = 2,
                     ignore_schemas: tuple[str, ...] = ()) -> Verification:
    """Read both sides (in parallel, ``jobs`` queries per side) and list every difference. Relations, sequences
    and enums in ``ignore_schemas`` (unquoted lowercase names, e.g. phase 3's app-role schema holding the release
    Job's empty tables) are left out on both sides."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        source_inventory, target_inventory = pool.map(
            lambda side: _without_schemas(inventory(session, side), ignore_schemas), (source, target))
    tasks = [(side, found, name) for side, found in ((source, source_inventory), (target, target_inventory))
             for name, relation in sorted(found.relations.items()) if relation.has_rows]

    def checksum(task: tuple[Endpoint, Inventory, str]) -> None:
        side, found, name = task
        rows, checksum_text = session.psql(side, content_sql(name)).split(" ", 1)
        found.contents[name] = (int(rows), checksum_text)

    with ThreadPoolExecutor(max_workers=max(1, 2 * jobs)) as pool:
        list(pool.map(checksum, tasks))
    return compare(source_inventory, target_inventory)


def _without_schemas(found: Inventory, schemas: tuple[str, ...]) -> Inventory:
    prefixes = tuple(f"{schema}." for schema in schemas)
    if not prefixes:
        return found
    return Inventory(
        relations={name: relation for name, relation in found.relations.items() if not name.startswith(prefixes)},
        sequences={name: value for name, value in found.sequences.items() if not name.startswith(prefixes)},
        extensions=found.extensions, large_objects=found.large_objects,
        enums={name: labels for name, labels in found.enums.items() if not name.startswith(prefixes)})


def compare(source: Inventory, target: Inventory) -> Verification:
    differences: list[str] = []
    for name in sorted(source.relations.keys() | target.relations.keys()):
        differences += _relation_differences(name, source, target)
    differences += _mapping_differences("sequence", source.sequences, target.sequences, _sequence_text)
    differences += _mapping_differences("extension", source.extensions, target.extensions, str)
    differences += _mapping_differences("enum", source.enums, target.enums, lambda labels: f"({', '.join(labels)})")
    if len(source.large_objects) != len(target.large_objects):
        differences.append(f"large objects: {len(source.large_objects)} on the source, "
                           f"{len(target.large_objects)} on the target")
    differences += _mapping_differences("large object", source.large_objects, target.large_objects,
                                        lambda digest: f"md5 {digest}")
    return Verification(differences=tuple(differences), summary=_summary(source))


def _relation_differences(name: str, source: Inventory, target: Inventory) -> list[str]:
    before, after = source.relations.get(name), target.relations.get(name)
    if before is None or after is None:
        present = before or after
        assert present is not None
        return [f"{present.label}: only on the {'source' if before else 'target'}"]
    differences = []
    if (before.kind, before.partition_of) != (after.kind, after.partition_of):
        differences.append(f"{before.label}: on the target it is {after.label}")
    if before.bound != after.bound:
        differences.append(f"{before.label}: bound {before.bound} on the source, {after.bound} on the target")
    if before.definition != after.definition:
        differences.append(f"{before.label}: definition differs")
    if before.populated != after.populated:
        differences.append(f"{before.label}: populated {before.populated} on the source, {after.populated} on the "
                           "target")
    if name in source.contents and name in target.contents:
        (rows_before, sum_before), (rows_after, sum_after) = source.contents[name], target.contents[name]
        if rows_before != rows_after:
            differences.append(f"{before.label}: {rows_before} rows on the source, {rows_after} on the target")
        elif sum_before != sum_after:
            differences.append(f"{before.label}: {rows_before} rows on both sides, different content")
    return differences


def _sequence_text(value: tuple[str, bool]) -> str:
    last_value, is_called = value
    return f"last_value {last_value} is_called {str(is_called).lower()}"


def _mapping_differences(what: str, source: dict[str, Any], target: dict[str, Any],
                         shown: Callable[[Any], str]) -> list[str]:
    differences = []
    for name in sorted(source.keys() | target.keys(), key=lambda key: (len(key), key) if key.isdigit() else (0, key)):
        if name not in target:
            differences.append(f"{what} {name}: only on the source")
        elif name not in source:
            differences.append(f"{what} {name}: only on the target")
        elif source[name] != target[name]:
            differences.append(f"{what} {name}: {shown(source[name])} on the source, {shown(target[name])} on the "
                               "target")
    return differences


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "es" if word.endswith("x") else "s")


def _summary(source: Inventory) -> str:
    kinds = [relation.kind for relation in source.relations.values()]
    partitions = sum(1 for relation in source.relations.values() if relation.partition_of and relation.kind == "r")
    rows = sum(rows for rows, _ in source.contents.values())
    parts = [_plural(kinds.count("r") - partitions, "table"), _plural(kinds.count("p"), "partitioned table"),
             _plural(partitions, "partition"),
             _plural(kinds.count("m"), "materialized view"), _plural(kinds.count("v"), "view"),
             _plural(len(source.sequences), "sequence"), _plural(len(source.extensions), "extension"),
             _plural(len(source.large_objects), "large object"), _plural(len(source.enums), "enum")]
    return f"compared {', '.join(parts)}; {_plural(rows, 'row')} on the source"


def verification_text(verification: Verification) -> str:
    lines = [f"verify: {verification.summary}"]
    if verification.ok:
        lines.append("verify: no differences")
    else:
        lines.append(f"verify: {_plural(len(verification.differences), 'difference')}:")
        lines += [f"  {difference}" for difference in verification.differences]
    return "".join(f"{line}\n" for line in lines)
