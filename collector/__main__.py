"""`python -m collector` runs the gpu-usage command line."""

from collector.cli import main

if __name__ == "__main__":  # not when a worker process imports it
    main()
