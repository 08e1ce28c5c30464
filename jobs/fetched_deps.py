"""Where `scripts/fetch_deps.py` put the Kafka connector jars and the test broker (git-ignored).

The job needs the jars on the MiniCluster, the cluster script ships them, the broker script runs
the binary: one place says where they are and how to get them when they are missing.
"""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path
from urllib.parse import urlparse

FIX = "run `python scripts/fetch_deps.py` (bash scripts/bootstrap.sh does it too)"


def project_root() -> Path:
    """The checkout that holds ``.cache/``: this file's project, unless this is a shipped copy (a
    cluster's client imports the zip that `flink run -pyfs` unpacked); then the installed checkout."""
    here = Path(__file__).resolve().parents[1]
    if (here / "pyproject.toml").is_file():
        return here
    installed = json.loads(importlib.metadata.distribution("flink-online-learning").read_text("direct_url.json") or "{}")
    url = installed.get("url", "")
    return Path(urlparse(url).path) if url.startswith("file:") else here


def deps_dir() -> Path:
    return project_root() / ".cache" / "deps"


def _existing(*relative: str) -> list[Path]:
    paths = [deps_dir() / r for r in relative]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"missing {', '.join(missing)}; {FIX}")
    return paths


def kafka_jars() -> list[Path]:
    """The connector and its kafka-clients, for ``env.add_jars`` / ``pipeline.jars`` / ``flink run``."""
    return _existing("jars/flink-connector-kafka.jar", "jars/kafka-clients.jar")


def tansu_binary() -> Path:
    return _existing("bin/tansu")[0]
