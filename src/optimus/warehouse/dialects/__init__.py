"""SQL dialects: what each engine spells differently, as fragments, and what it can do, as data.

Shared SQL (formats/, services/) is written once and asks its warehouse's dialect (`wh.sql`) for a
fragment wherever engines disagree; a dialect module overrides only those fragments. This follows
dbt's `adapter.dispatch` (a `default__x` and an engine's `postgres__x`) and dlt's destination
capabilities. docs/architecture.md lists the fragments and capabilities a new engine provides.
"""

from optimus.warehouse.dialects.base import Capabilities, Dialect

__all__ = ["Capabilities", "Dialect"]
