"""The local runtime: the whole pipeline on one machine, with moto (in a process of its own,
patched where it is slow or unsafe under concurrency) for AWS and an emulator for Twilio."""
