"""gpu-usage: GPU usage by user category against allocation quotas, from Slurm accounting."""

__version__ = "0.1.0"
