"""The `callqueue` command (not deployed): `cli` (its arguments and commands), `generate` (test
files), `report` (a run's report), `deploy` (the stack and the steps around `chalice deploy`) and
`local` (the local runtime: the whole pipeline on one machine)."""
