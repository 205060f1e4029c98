"""Prometheus export: `views` prepares the current month's typed report and the live
counts from squeue and sinfo; `metrics` turns them into metric families in base
units (GPU-seconds, seconds, ratios); `exporter` serves them, never running Slurm or
reading the store during a scrape.
"""
