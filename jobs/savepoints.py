"""Stop a running job with a savepoint, so that ``--resume PATH`` continues it exactly.

PyFlink 2.3's ``JobClient.stop_with_savepoint`` calls a Java overload that Flink 2.x removed
(it now takes a ``SavepointFormatType``), so this goes through the Java client directly.
"""

from __future__ import annotations

from pathlib import Path

from pyflink.common import JobClient
from pyflink.java_gateway import get_gateway


def stop_with_savepoint(client: JobClient, directory: Path) -> str:
    """Takes a canonical savepoint, then stops the job; returns the savepoint's path (a URI).

    Event time is not advanced to the end: open windows stay in the savepoint and close after
    the resume, exactly as if the job had never stopped.
    """
    formats = get_gateway().jvm.org.apache.flink.core.execution.SavepointFormatType
    # The public wrapper is broken (see module docstring); its Java client is the documented API.
    j_client = client._j_job_client  # noqa: SLF001
    return j_client.stopWithSavepoint(False, directory.as_uri(), formats.CANONICAL).get()
