"""Downstream sinks and error routing for the response topic."""
