"""The local runtime and command line: the whole pipeline on one machine (not deployed)."""
