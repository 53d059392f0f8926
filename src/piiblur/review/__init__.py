"""Checking output before publishing: ``pii-blur audit``, ``pii-blur apply`` and the review page."""
