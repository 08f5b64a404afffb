"""Operating the analytics database: what operators run from the command line or from Dagster.

- `dbt`: running the dbt project (dbt_project.yml at the repository root) against the configured
  ClickHouse, with this deployment's vars and profile variables.
- `migrate`: `dbt build`, safe to repeat; it upgrades a database built by earlier names first.
- `backfill`: rebuild chosen days' aggregates from the deduplicated raw history.
- `dead_letters`: dead letters grouped by topic and error, and their replay.

Each function takes the settings slice it needs (core.settings.schema.SchemaSettings).
"""
