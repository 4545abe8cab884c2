"""Entry point of the Streamlit app: ``faceattrs app`` runs ``streamlit run`` on this file."""

from __future__ import annotations

import streamlit as st

from faceattrs.app import about_page, analyze_page

st.set_page_config(page_title="faceattrs", page_icon=":material/face:", layout="wide")
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
