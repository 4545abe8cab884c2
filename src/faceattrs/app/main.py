"""Entry point of the Streamlit app: ``faceattrs app`` runs ``streamlit run`` on this file."""

from __future__ import annotations

import streamlit as st

from faceattrs.app import about_page, analyze_page
from faceattrs.app.icon import page_icon

# An unexpected error shows a generic message, never a stack trace with the server's paths (the console keeps the
# details); set here as well as by `faceattrs app`, so that `streamlit run` on this file is just as quiet.
st.set_option("client.showErrorDetails", "none")
st.set_page_config(page_title="faceattrs", page_icon=page_icon(), layout="wide")  # drawn locally: nothing from a CDN
page = st.navigation(
    [
        st.Page(
            analyze_page.render,
            title="Analyze a photo",
            icon=":material/photo_camera:",
            default=True,
            url_path="analyze",
        ),
        st.Page(about_page.render, title="About the model", icon=":material/analytics:", url_path="about"),
    ]
)
page.run()
