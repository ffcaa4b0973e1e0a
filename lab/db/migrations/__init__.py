"""Alembic migrations (``versions/``), their environment and the model registry they compare against."""
