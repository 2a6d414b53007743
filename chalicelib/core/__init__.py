"""The pure core: records both ways, the schedule and metering arithmetic, outcomes, segments,
evidence matching and size-aware batching. It imports no AWS or Twilio client
(tests/unit/test_architecture.py)."""
