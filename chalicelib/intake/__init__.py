"""Intake: reading, validating and chunking an uploaded file, one job per content."""
