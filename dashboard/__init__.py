"""The Streamlit dashboard over the usage engine (its pages arrive with the dashboard issue)."""
