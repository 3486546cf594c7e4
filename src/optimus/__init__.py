"""Optimus: ingest the edX research data package into a queryable warehouse."""

__version__ = "0.1.0"
