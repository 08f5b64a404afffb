"""The `analytics` subcommands, one module per part they run; analytics.cli registers them."""
