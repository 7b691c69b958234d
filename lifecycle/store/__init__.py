"""Persistence: SQLAlchemy Core tables, the unit of work on them (`datastore.Store` handing out
`recorder.Recorder`s, one class of each per dialect), Alembic migrations."""
