"""The usage engine (pure: rows in, typed figures out; it reads the store only
through `collector.store.reads`).

- `periods`: months, quarters, years and custom spans in the facility's time zone.
- `rollup`: how one job becomes GPU-seconds per local day (used by the collector).
- `policy`: accounts to categories and pools; quotas; the allocations and their
  arithmetic (state, linear plan, projection, warnings, plan status).
- `capacity`: nominal, down, planned-down and available GPU time.
- `usage`: running jobs clipped to a period.
- `model`: the typed report (frozen msgspec Structs, integer GPU-seconds) and the
  label of every figure.
- `report`: computes the typed report of a period, every derived status once.
- `verify`: the store against sreport.
"""
