"""Storage: tables, Alembic migrations, repository functions returning dataclasses.

Nothing outside this package sees a SQLAlchemy row: readers get the records in ``records.py``.
"""
