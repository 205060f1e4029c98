"""`python -m dashboard.serve FLAGS...`: `streamlit run dashboard/app.py FLAGS...` with
the dashboard's modules (pandas, Altair, the usage engine) imported before the server
listens, so that the first visitor does not wait for the imports (about a second)."""

import sys
from pathlib import Path

import altair  # noqa: F401
import pandas  # noqa: F401
from streamlit.web import cli

from dashboard import charts, queries, state  # noqa: F401

APP = Path(__file__).resolve().parent / "app.py"


def main() -> None:
    sys.argv = ["streamlit", "run", str(APP), *sys.argv[1:]]
    cli.main()


if __name__ == "__main__":
    main()
