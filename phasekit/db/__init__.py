"""Database tools behind ``phasekit db``: copy a live PostgreSQL database to the next phase's server and prove
the copy whole, and (from ``restore.py``) restore a stack's backups.

- ``connection.py``: connection URLs without passwords, the private temporary PGPASSFILE that carries the
  passwords to ``psql``, ``pg_dump`` and ``pg_restore`` (never their arguments, never a URL), and
  ``store_password`` behind ``phasekit db pgpass``;
- ``freeze.py``: the write freeze on the source (read-only database, other sessions ended, the window recorded);
- ``verify.py``: both sides compared object by object (rows and content checksums, sequences, extensions,
  large objects, views, materialized views, partitions, enums);
- ``migrate.py``: ``migrate_database``: checks, freeze, ``pg_dump``/``pg_restore``, verification, report;
- ``redis_copy.py``: Redis keys copied with DUMP/RESTORE and compared;
- ``adopt.py``: a restored ``public`` schema handed to phase 3's app role (``--target-role``, ``phasekit db adopt``);
- ``cli.py``: the ``phasekit db migrate|verify|unfreeze|adopt|pgpass|restore|drill`` command line.
"""
