"""``adopt_schema``: hand a restored ``public`` schema to the app's own role (phase 3's ``app_user``).

Phase 3's app connects as its own role, which owns a schema of its name and has ``search_path`` set to it
(``components/database_role.py`` ``app_role_sql``); the droplets keep the app's tables in ``public``. A copy made
as the RDS master user with ``pg_restore --no-owner --no-acl`` lands in ``public``, owned by the master. Adopting
it, in ONE transaction (a DO block is one statement), metadata only (no row is read or written):

1. the role's existing schema (the empty tables the release Job created) is renamed out of the way to
   ``<role>_replaced_<UTC YYYYmmdd_HHMMSS>``; nothing is dropped;
2. ``public`` is renamed to the role's name and given to the role (PUBLIC's USAGE revoked, as on the schema
   ``app_role_sql`` creates);
3. every object in it that the current user owns is given to the role: tables (partitioned too, and partitions),
   views, materialized views, foreign tables, standalone sequences (a sequence owned by a column follows its
   table), enum/domain/range/composite types, functions, procedures and aggregates. Objects that belong to an
   extension stay the master's: USAGE on their schema comes with the schema's ownership, and PostgreSQL grants
   EXECUTE on functions and USAGE on types to PUBLIC by default, so the app can still call ``pgp_sym_encrypt``
   and use ``citext``;
4. the large objects the current user owns are given to the role;
5. an empty ``public`` is created again as initdb makes it on PostgreSQL 15+: owned by ``pg_database_owner`` (the
   database's owner, whoever that is: https://www.postgresql.org/docs/15/ddl-schemas.html#DDL-SCHEMAS-PUBLIC),
   USAGE for PUBLIC, CREATE revoked from PUBLIC (``app_role_sql`` revokes it too).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

from components.database_role import check_role_name
from phasekit.db.connection import DatabaseError, Endpoint, Session, quote_ident, quote_literal

PREFLIGHT_SQL = """
SELECT json_build_object(
  'role_exists', EXISTS (SELECT FROM pg_roles WHERE rolname = {role}),
  'member', EXISTS (SELECT FROM pg_roles WHERE rolname = {role}) AND pg_has_role({role}, 'MEMBER'),
  'create_in_public', has_schema_privilege('public', 'CREATE'),
  'owns_public', pg_has_role((SELECT nspowner FROM pg_namespace WHERE nspname = 'public'), 'MEMBER'),
  'database_owner_role', EXISTS (SELECT FROM pg_roles WHERE rolname = 'pg_database_owner'),
  'user', current_user)
"""

# Objects in schema s owned by the current user, extension members left out, as ALTER statements.
_OWNED = """
  FOR r IN SELECT c.oid::regclass AS name, c.relkind FROM pg_class c
           WHERE c.relnamespace = s AND c.relowner = me AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
             AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                             AND (d.deptype = 'e' OR (c.relkind = 'S' AND d.deptype IN ('a', 'i'))))
  LOOP
    EXECUTE format(CASE r.relkind WHEN 'S' THEN 'ALTER SEQUENCE %s OWNER TO %I'
                   WHEN 'v' THEN 'ALTER VIEW %s OWNER TO %I' WHEN 'm' THEN 'ALTER MATERIALIZED VIEW %s OWNER TO %I'
                   WHEN 'f' THEN 'ALTER FOREIGN TABLE %s OWNER TO %I' ELSE 'ALTER TABLE %s OWNER TO %I' END,
                   r.name, role);
  END LOOP;
  FOR r IN SELECT t.oid::regtype AS name, t.typtype FROM pg_type t LEFT JOIN pg_class c ON c.oid = t.typrelid
           WHERE t.typnamespace = s AND t.typowner = me
             AND (t.typtype IN ('e', 'd', 'r') OR (t.typtype = 'c' AND c.relkind = 'c'))
             AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid
                             AND d.deptype = 'e')
  LOOP
    EXECUTE format(CASE r.typtype WHEN 'd' THEN 'ALTER DOMAIN %s OWNER TO %I' ELSE 'ALTER TYPE %s OWNER TO %I' END,
                   r.name, role);
  END LOOP;
  FOR r IN SELECT p.oid::regprocedure AS name FROM pg_proc p
           WHERE p.pronamespace = s AND p.proowner = me
             AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                             AND d.deptype = 'e')
  LOOP
    EXECUTE format('ALTER ROUTINE %s OWNER TO %I', r.name, role);
  END LOOP;
  FOR r IN SELECT oid FROM pg_largeobject_metadata WHERE lomowner = me LOOP
    EXECUTE format('ALTER LARGE OBJECT %s OWNER TO %I', r.oid, role);
  END LOOP;
"""

OWNED_BY_ROLE_SQL = """
SELECT json_build_object(
  'relations', (SELECT count(*) FROM pg_class WHERE relnamespace = {schema}::regnamespace
                AND relowner = {role}::regrole AND relkind IN ('r', 'p', 'v', 'm', 'S', 'f')),
  'types', (SELECT count(*) FROM pg_type t LEFT JOIN pg_class c ON c.oid = t.typrelid
            WHERE t.typnamespace = {schema}::regnamespace AND t.typowner = {role}::regrole
            AND (t.typtype IN ('e', 'd', 'r') OR (t.typtype = 'c' AND c.relkind = 'c'))),
  'routines', (SELECT count(*) FROM pg_proc WHERE pronamespace = {schema}::regnamespace
               AND proowner = {role}::regrole),
  'large_objects', (SELECT count(*) FROM pg_largeobject_metadata WHERE lomowner = {role}::regrole))
"""


@dataclass(frozen=True)
class Adoption:
    role: str
    replaced_schema: str | None
    """Where the role's earlier schema went; None when it had none."""

    relations: int
    types: int
    routines: int
    large_objects: int


def replaced_name(role: str, moment: datetime) -> str:
    """``<role>_replaced_<UTC YYYYmmdd_HHMMSS>``: lowercase, so it needs no quoting; the role's part shortened so
    the whole stays within PostgreSQL's 63-byte names (a longer one would be cut silently)."""
    suffix = f"_replaced_{moment.astimezone(UTC).strftime('%Y%m%d_%H%M%S')}"
    return role[:63 - len(suffix)] + suffix


def check_role(role: str, option: str = "--target-role") -> None:
    """Phase 3's rule for the app role's name (lowercase, so the schema named after it needs no quoting)."""
    try:
        check_role_name(role, label=option)
    except ValueError as error:
        raise DatabaseError(str(error)) from None


def check_adoptable(db_session: Session, target: Endpoint, role: str, option: str = "--target-role") -> bool:
    """Raise unless the target's user can adopt ``public`` for ``role``; return whether ``pg_database_owner``
    exists (PostgreSQL 14+). Run before anything is copied or frozen."""
    check_role(role, option)
    found = db_session.rows(target, PREFLIGHT_SQL.format(role=quote_literal(role)).strip())[0]["json_build_object"]
    if not found["role_exists"]:
        raise DatabaseError(f"{target.label}: role \"{role}\" does not exist; {option} names the app's role, "
                            "which phase 3's database-role Job creates (deploy the phase-3 stack first)")
    if not found["create_in_public"] or not found["owns_public"]:
        raise DatabaseError(f"{target.label}: user \"{found['user']}\" cannot create in schema public; with "
                            "--target-role the target URL names the RDS master user (the database's owner), not "
                            "the app's role")
    if not found["member"]:
        raise DatabaseError(f"{target.label}: user \"{found['user']}\" is not a member of role \"{role}\", so it "
                            f"cannot give it objects; run as the master user, or GRANT \"{role}\" TO "
                            f"\"{found['user']}\"")
    return bool(found["database_owner_role"])


def adopt_sql(role: str, replaced: str, *, database_owner_role: bool) -> str:
    """The one DO block that adopts ``public`` for ``role`` (``role`` checked by the caller, quoted anyway)."""
    public_owner = "pg_database_owner" if database_owner_role else "CURRENT_USER"
    return f"""DO $adopt$
DECLARE
  role text := {quote_literal(role)};
  me oid := (SELECT oid FROM pg_roles WHERE rolname = current_user);
  s oid;
  r record;
BEGIN
  IF EXISTS (SELECT FROM pg_namespace WHERE nspname = role) THEN
    EXECUTE format('ALTER SCHEMA %I RENAME TO %I', role, {quote_literal(replaced)});
  END IF;
  EXECUTE format('ALTER SCHEMA public RENAME TO %I', role);
  EXECUTE format('ALTER SCHEMA %I OWNER TO %I', role, role);
  EXECUTE format('REVOKE ALL ON SCHEMA %I FROM PUBLIC', role);
  s := (SELECT oid FROM pg_namespace WHERE nspname = role);
{_OWNED}
  CREATE SCHEMA public AUTHORIZATION {public_owner};
  GRANT USAGE ON SCHEMA public TO PUBLIC;
  REVOKE CREATE ON SCHEMA public FROM PUBLIC;
END
$adopt$"""


def adopt_schema(db_session: Session, target: Endpoint, role: str, *, out: TextIO,
                 moment: datetime | None = None, option: str = "--target-role") -> Adoption:
    """Check, then adopt ``public`` for ``role`` on ``target`` in one transaction; print what moved."""
    database_owner_role = check_adoptable(db_session, target, role, option)
    replaced = replaced_name(role, moment or datetime.now(UTC))
    had_schema = db_session.psql(target, f"SELECT count(*) FROM pg_namespace WHERE nspname = {quote_literal(role)}")
    db_session.psql(target, adopt_sql(role, replaced, database_owner_role=database_owner_role))
    counts = db_session.rows(target, OWNED_BY_ROLE_SQL.format(schema=quote_literal(quote_ident(role)),
                                                             role=quote_literal(quote_ident(role))).strip())
    moved = counts[0]["json_build_object"]
    adoption = Adoption(role=role, replaced_schema=replaced if had_schema == "1" else None, **moved)
    kept = (f"; its earlier schema is kept as \"{adoption.replaced_schema}\"" if adoption.replaced_schema
            else "")
    out.write(f"adopt: schema public is now \"{role}\", owned by {role} ({adoption.relations} relations, "
              f"{adoption.types} types, {adoption.routines} routines, {adoption.large_objects} large objects)"
              f"{kept}; a new empty public was created\n")
    return adoption
