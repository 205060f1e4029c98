"""The Streamlit dashboard over the usage engine: `gpu-usage dashboard` (see app.py)."""
