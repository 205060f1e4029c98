"""The store: every line of SQL in the product.

- `database`: the SQLite file in WAL mode, its schema, the writer's lock, the
  collector's writes (jobs, rollups, accounts, events, reservations, collections,
  rejected lines).
- `reads`: what the engine, the exporter and the dashboard read back (usage per
  day, starts, the account tree, events, reservations, node inventory, health,
  data quality), as typed rows.
- `parquet`: a site's export for a network of sites (Parquet files written and read by
  DuckDB) and its versioned schema.
"""
