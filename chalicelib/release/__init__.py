"""Release: the chunk release loop (its state machine adapter and its step), the enqueuer, and
resuming a paused job."""
