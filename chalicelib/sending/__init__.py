"""Sending: the sender, its call ledger, rate limiter, suppression checks and response topic."""
