"""A Kafka-protocol broker (Tansu, in-memory storage) on a free loopback port, for tests and demos.

    python scripts/broker.py            # runs until Ctrl-C, prints the bootstrap address

    with Broker() as broker:            # from Python: started, ready, and stopped on exit
        produce_to(broker.bootstrap)
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

# Run as a plain script from anywhere: make the project's scripts importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.fetch_deps import tansu_binary  # noqa: E402

READY_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(ready: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.2) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout_s:.0f} s")
        time.sleep(interval_s)


class Broker:
    """Starts the broker in ``__enter__``, waits for the Kafka protocol, kills it in ``__exit__``."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="broker-", suffix=".log", delete=False)
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Broker:
        url = f"tcp://{self.bootstrap}"
        self.process = subprocess.Popen(
            [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_until(self._answers, READY_TIMEOUT_S, f"broker on {self.bootstrap}")
        except TimeoutError as exc:
            self.__exit__(None, None, None)
            raise RuntimeError(f"{exc}; broker log: {Path(self.log.name).read_text()[-2000:]}") from None
        return self

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"broker exited with {self.process.returncode}: "
                               f"{Path(self.log.name).read_text()[-2000:]}")
        from kafka import KafkaAdminClient
        try:
            KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=2000).close()
            return True
        except Exception:  # noqa: BLE001 - any failure here just means "not yet"
            return False

    def __exit__(self, *exc: object) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int)
    args = p.parse_args(argv)
    with Broker(args.port) as broker:
        print(f"broker ready: bootstrap servers {broker.bootstrap} (Ctrl-C stops it)", flush=True)
        try:
            broker.process.wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
