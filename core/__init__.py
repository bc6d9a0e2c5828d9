"""The bottom layer: types and helpers every other package shares, depending on nothing of ours.

`pipeline/` composes the job; `transforms/` and `sinks/` do the work; all three import from here, and this package
imports none of them (tests/unit/test_layers.py checks it). What lives here is what crosses module boundaries:
the connector base model and secret references (`config`, `secrets`), the named records that travel between steps
(`records`), the chunk encoding (`chunks`), the lanes of connectors that share work (`lanes`) and metric names
(`metrics`).
"""
