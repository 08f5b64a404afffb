"""The floor every part stands on: settings per component, the names of topics, tables and
measures, ClickHouse's error codes, the query-backend interface and the ClickHouse client layer.

It imports nothing of the project above it (import-linter's contracts in pyproject.toml say so),
and its modules load without the stack's dependencies, so the producer SDK can use them.
"""
