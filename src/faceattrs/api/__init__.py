"""The HTTP API (``faceattrs serve``)."""
