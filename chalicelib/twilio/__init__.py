"""Twilio: the gateway (the official SDK, metered and with its errors turned into ours) and the
signed status callbacks."""
