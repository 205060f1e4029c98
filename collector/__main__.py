"""`python -m collector` runs the gpu-usage command line."""

from .cli import main

main()
