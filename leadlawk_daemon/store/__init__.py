"""Persistence: PostgreSQL (asyncpg) and the embedded SQLite default, one logical schema."""
