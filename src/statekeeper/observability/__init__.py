"""Observability: metrics for Prometheus (``metrics``: what this process counts;
``scrape``: the ``/metrics`` page, with what the database knows)."""
