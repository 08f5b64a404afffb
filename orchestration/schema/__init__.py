"""Every dbt model as an asset, every dbt test as an asset check."""
