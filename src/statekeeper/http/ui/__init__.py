"""The dashboard at /ui: its pages (``pages.py``) and its sign-in (``session.py``)."""
