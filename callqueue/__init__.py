"""The `callqueue` command (not deployed): `cli` (its arguments and commands), `generate` (test
files), `report` (a run's report), `deploy` (the stack and the steps around `chalice deploy`) and
`local` (the local runtime: the whole pipeline on one machine). `project` finds the Chalice
project whose code the command runs."""

from callqueue.project import make_importable

make_importable()
