"""A failed job's cause in one line, for the ``error:`` message and the MLflow run's end reason.

Flink reports a failure as a chain of wrapped Java exceptions (the job's result, the restart
strategy giving up, the task, the operator, a Python traceback inside), printed as a trace of
hundreds of lines; the cause is the innermost exception, and within a Python traceback its last line.
"""

from __future__ import annotations

import re

# A Python traceback's last line, or an embedded interpreter's (thread mode) "<class 'mod.Name'>: message".
_PYTHON_ERROR = re.compile(r"^\s*(?:<class '(?:[\w.]+\.)?)?([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Failure))'?>?: (.+)$")


def cause_line(chain: list[tuple[str, str]]) -> str:
    """The innermost cause of ``chain`` ((exception class, message), outermost first) in one line.

    >>> cause_line([("org.apache.flink.runtime.JobException", "Recovery is suppressed by FixedDelayRestart"),
    ...             ("java.io.IOException", "No space left on device")])
    'No space left on device (java.io.IOException)'
    >>> cause_line([("java.lang.RuntimeException", "Error received from SDK harness\\nTraceback (most recent "
    ...              "call last):\\n  File \\"x.py\\", line 3\\nValueError: bad value\\n")])
    'bad value (ValueError)'
    >>> cause_line([("pemja.core.PythonException", "<class '__main__.InjectedFailure'>: failed after 506 records")])
    'failed after 506 records (InjectedFailure)'
    """
    for name, message in reversed(chain):
        lines = [line for line in (message or "").splitlines() if line.strip()]
        python = [m for m in map(_PYTHON_ERROR.match, lines) if m]
        if python:
            return f"{python[-1].group(2).strip()} ({python[-1].group(1)})"
        if lines:
            return f"{lines[0].strip()} ({name})"
    return f"no message ({chain[-1][0]})" if chain else "no message"


def java_chain(exc: BaseException) -> list[tuple[str, str]]:
    """(class, message) of a Py4J error's Java exception and its causes; of the exception itself otherwise."""
    java = getattr(exc, "java_exception", None)
    if java is None:
        return [(type(exc).__name__, str(exc))]
    chain: list[tuple[str, str]] = []
    seen = 0
    while java is not None and seen < 50:  # a cycle in causes is legal Java
        chain.append((java.getClass().getName(), java.getMessage() or ""))
        java, seen = java.getCause(), seen + 1
    return chain


def failure_line(exc: BaseException) -> str:
    """Why the job or the client failed, cause first, in one line.

    >>> failure_line(OSError(28, "No space left on device", "/data/out/summary.json"))
    'No space left on device: /data/out/summary.json (the output folder or a store cannot be written)'
    """
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where} (the output folder or a store cannot be written)"
    return cause_line(java_chain(exc))
