"""The Dagster code location of the analytics stack: `dagster ... -m orchestration` loads `defs`.

This entry point is wiring: Dagster starts the webserver, the daemon and every run in processes
of their own and loads the code location by this module path, so here, and only here in this
package, the settings are read from the environment (ANALYTICS_*, which `analytics up` and
`analytics dagster` hand down). Everything below receives the DagsterSettings slice.
Nothing happens at import: Dagster calls `defs` when it loads the code location, and only then
are the settings read and the dbt manifest parsed.
"""

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    from core.settings.composed import Settings
    from core.settings.dagster import DagsterSettings
    from orchestration.definitions import build_definitions

    return build_definitions(Settings().slice(DagsterSettings))
