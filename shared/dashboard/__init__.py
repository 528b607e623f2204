"""The dashboard at ``/``: static page, plots of versions, the signed-in session."""
