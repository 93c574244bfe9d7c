"""Database access: engine, declarative base and migrations."""
