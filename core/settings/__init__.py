"""Settings, one slice per component, composed into the one Settings object in `composed`.

Each slice is a plain pydantic model with the fields (and their ANALYTICS_* variables' names) of
one component; a component is handed its slice and reads nothing else. Only the wiring (the
`analytics` command, and the Dagster code location's entry point) builds the composed Settings,
which reads the environment once, and hands slices down (`settings.slice(GrpcSettings)`).
"""
