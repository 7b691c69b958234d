"""Persistence: SQLAlchemy Core tables, the statements the engine runs, Alembic migrations."""
