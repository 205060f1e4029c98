"""The dashboard's pages: scripts that st.navigation runs (layout only; see app.py)."""
