"""The Twilio emulator in a process of its own, as the local runtime runs it.

Twilio is another service, and the emulator's arrival times are what the rate benchmark
measures: in a process of its own, a request's arrival is stamped without waiting for the
interpreter that every sender, sink and trigger of the runtime shares (one GIL), and the
emulator's work is off that interpreter. (Measured: this did not change the benchmark's
figures; the calls' spread arises in the senders, see docs/benchmarks.md.)

`EmulatorProcess` starts it and reads back the requests it logged (its requests log, a file of
JSON lines; a temporary one when no log was asked for), also once it has stopped.

Usage: python -m callqueue.local.emulator_process CONFIG_JSON
Prints "READY <base url>" once serving; stops when its standard input closes.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from callqueue.local import child_process
from callqueue.local.emulator import DEFAULT_SLOW_SECONDS, TwilioEmulator
from callqueue.local.emulator.inbound import send_reply
from callqueue.local.faults import FaultSpec

Json = dict[str, Any]


class EmulatorProcess:
    """A TwilioEmulator served by a child process; `requests` as the emulator's own."""

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        latency: float = 0.0,
        concurrency_limit: int | None = None,
        faults: FaultSpec | None = None,
        requests_log: Path | None = None,
        seed: int | None = None,
        lookup_faults: FaultSpec | None = None,
        slow_seconds: float = DEFAULT_SLOW_SECONDS,
        trial_account: bool = False,
        test_credentials: bool = False,
        inbound_url: str | None = None,
    ) -> None:
        """As `TwilioEmulator`'s arguments; the defaults are the local runtime's."""
        self._inbound_url = inbound_url
        # A temporary log lasts as long as this object: its requests stay readable after stop().
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        if requests_log is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="callqueue-twilio-")
            requests_log = Path(self._scratch.name) / "requests.jsonl"
        self._log = requests_log
        # The log is appended to: only what this run adds is its requests.
        self._offset = requests_log.stat().st_size if requests_log.exists() else 0
        self._seen: list[Json] = []
        self._lock = threading.Lock()
        self._config: Json = {
            "account_sid": account_sid,
            "auth_token": auth_token,
            "latency": latency,
            "concurrency_limit": concurrency_limit,
            "faults": str(faults) if faults is not None else None,
            "requests_log": str(requests_log),
            "seed": seed,
            "lookup_faults": str(lookup_faults) if lookup_faults is not None else None,
            "slow_seconds": slow_seconds,
            "trial_account": trial_account,
            "test_credentials": test_credentials,
        }
        self._process: subprocess.Popen[str] | None = None
        self._base_url: str | None = None

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("the emulator is not running")
        return self._base_url

    @property
    def requests(self) -> list[Json]:
        """Every request the emulator answered (or dropped) so far, in arrival order. Only the
        lines logged since the last look are read (the progress display looks every tick)."""
        with self._lock:
            if self._log.exists():
                with self._log.open("rb") as log:
                    log.seek(self._offset)
                    data = log.read()
                # A line still being written has no newline yet: it is read next time.
                complete = data.rfind(b"\n") + 1
                self._seen.extend(json.loads(line) for line in data[:complete].splitlines())
                self._offset += complete
            return list(self._seen)

    def reply(self, from_number: str, to_number: str, body: str) -> int | None:
        """As `TwilioEmulator.reply`. Posted from this process: the child takes no commands, and
        a reply depends on nothing the child holds but the account's credentials."""
        if self._inbound_url is None:
            raise RuntimeError("the emulator has no incoming-message webhook (inbound_url)")
        config = self._config
        return send_reply(
            self._inbound_url,
            config["account_sid"],
            config["auth_token"],
            from_number,
            to_number,
            body,
        )

    def start(self) -> None:
        self._process = child_process.spawn(
            "callqueue.local.emulator_process", json.dumps(self._config)
        )
        ready = child_process.ready(self._process)
        if ready is None or len(ready) != 1:
            self.stop()
            raise RuntimeError("the Twilio emulator did not start")
        self._base_url = ready[0]

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            child_process.stop(process)
        self._base_url = None


def main(argv: list[str]) -> int:
    config = json.loads(argv[1])
    faults = config["faults"]
    lookup_faults = config["lookup_faults"]
    emulator = TwilioEmulator(
        account_sid=config["account_sid"],
        auth_token=config["auth_token"],
        latency=float(config["latency"]),
        concurrency_limit=config["concurrency_limit"],
        faults=FaultSpec.parse(faults) if faults else None,
        requests_log=Path(config["requests_log"]),
        rng=random.Random(config["seed"]),
        lookup_faults=FaultSpec.parse(lookup_faults) if lookup_faults else None,
        slow_seconds=float(config["slow_seconds"]),
        trial_account=bool(config["trial_account"]),
        test_credentials=bool(config["test_credentials"]),
    )
    emulator.start()
    child_process.serve_until_stdin_closes(emulator.base_url)
    emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
