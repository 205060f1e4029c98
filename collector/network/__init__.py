"""A network of sites: each site exports its figures as Parquet files (parquet.py) with
a versioned schema; `report.py` computes one report over several sites' exports with
DuckDB. The files are plain Hive-partitioned Parquet, so Spark, Trino or any other
engine reads them too (docs/network.md)."""
