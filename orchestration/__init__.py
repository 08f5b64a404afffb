"""The Dagster code location of the analytics stack: `dagster ... -m orchestration` loads `defs`.

Nothing happens at import: Dagster calls `defs` when it loads the code location, and only then
are the settings read (ANALYTICS_* variables, through analytics.settings) and the dbt manifest
parsed.
"""

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    from analytics.settings import Settings
    from orchestration.definitions import build_definitions

    return build_definitions(Settings())
