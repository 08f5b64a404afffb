"""The wiring: the `analytics` command and the stack `analytics up` starts.

The only floor that imports everything: it reads the settings once (core.settings.composed),
chooses the parts and hands each one its settings slice and what it needs (the gRPC service its
query backend, the bridge its configuration). docs/architecture.md draws the floors.
"""
