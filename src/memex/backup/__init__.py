"""Verified backups: one archive holding a `pg_dump` of the whole database and a manifest to check it against.

create.py writes an archive, verify.py restores one into a scratch Postgres and checks it, restore.py loads one
into the configured database, retention.py lists and prunes a folder of them, status.py reads what the last
scheduled backup did. archive.py is the file format, crypto.py its encryption, pgtools.py the Postgres client
programs, store.py all of this package's SQL.
"""
