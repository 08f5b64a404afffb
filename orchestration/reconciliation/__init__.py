"""Backfills and reconciliation: aggregates rebuilt from the deduplicated raw history, per day."""
