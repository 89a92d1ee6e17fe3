"""The Runtime build engine.

Data flows one way: WORKSPACE/BUILD (Starlark) -> targets (``rules.load.model``) -> actions
(locking, fetching, building) -> cached outputs. ``tasks/`` is a thin invoke front end over
this package; no build logic lives there.
"""
