"""A job's valid rows cut into chunks: one sequence of chunks per group of time zones (one group
for a job without a send window), each in file order and numbered from 0 within its group
(chalicelib.aws.buckets.group_chunk_key). The release loop (chalicelib.core.slices) releases runs
of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from chalicelib.aws.buckets import SpooledFile
from chalicelib.core.records import ChunkRow
from chalicelib.core.slices import Group
from chalicelib.intake.encoded import carried_member, chunk_line, compact


class _Open:
    def __init__(self, index: int, rows: int = 0, chunks: int = 0) -> None:
        self.index = index
        self.file = SpooledFile()
        self.rows = rows
        self.chunks = chunks


@dataclass(frozen=True)
class GroupState:
    """A group's place when a split stops part way (chalicelib.intake.checkpoint): its valid rows
    and stored chunks so far; its partial chunk's lines are kept beside it."""

    zones: tuple[str, ...]
    rows: int
    chunks: int


class ChunkWriter:
    """`put(group, number, file)` stores a full chunk; `size` rows make one."""

    def __init__(self, put: Callable[[int, int, SpooledFile], None], size: int, cps: int) -> None:
        self._put = put
        self._size = size
        self._cps = cps
        self._groups: dict[tuple[str, ...], _Open] = {}
        self.chunks = 0

    def add(
        self, zones: tuple[str, ...], number: int, row: ChunkRow, params_json: str = ""
    ) -> None:
        """`params_json`: the row's parameters as compact JSON when already written."""
        group = self._groups.get(zones)
        if group is None:
            group = self._groups[zones] = _Open(len(self._groups))
        # The offset is the row's place in its group at the job's rate when it was split; the
        # release step gives each run its own times (chalicelib.release.releaser).
        offset = group.rows / self._cps
        line = chunk_line(
            number,
            row.api,
            params_json or compact(row.params),
            offset,
            carried_member(row.carried),
        )
        # write_line's bytes in one write, not two: JSON holds no raw newline, so write_raw
        # counts one line.
        group.file.write_raw(f"{line}\n".encode())
        group.rows += 1
        if group.file.lines == self._size:
            self._flush(group)

    def _flush(self, group: _Open) -> None:
        self._put(group.index, group.chunks, group.file)
        group.file.close()
        group.file = SpooledFile()
        group.chunks += 1
        self.chunks += 1

    def finish(self) -> tuple[Group, ...]:
        """Stores every partial chunk; the groups, in the order their first rows came."""
        for group in self._groups.values():
            if group.file.lines:
                self._flush(group)
        return tuple(
            Group(zones=zones, chunks=g.chunks, rows=g.rows) for zones, g in self._groups.items()
        )

    def state(self) -> Iterator[tuple[GroupState, SpooledFile]]:
        """Each group's state and its partial chunk (not stored yet), in the groups' order."""
        for zones, group in self._groups.items():
            yield GroupState(zones, group.rows, group.chunks), group.file

    def restore(self, state: GroupState, lines: Iterator[bytes]) -> None:
        """Takes up a group where a stopped split left it: its counts and its partial chunk's
        lines (as stored). Groups are restored in the order state() gave."""
        group = self._groups[state.zones] = _Open(len(self._groups), state.rows, state.chunks)
        for line in lines:
            group.file.write_raw(line if line.endswith(b"\n") else line + b"\n")
        self.chunks += state.chunks

    def close(self) -> None:
        for group in self._groups.values():
            group.file.close()
