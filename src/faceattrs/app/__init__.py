"""The Streamlit web app (``faceattrs app``)."""
