"""The errors wiretick raises on purpose, and the one base the CLI turns into one line.

Every error a user can act on (a bad file, a bad option, a tool that failed, a
device that stopped answering) derives from :class:`WiretickError`; the command
line prints its message on one line of stderr and exits 2.  Anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["WiretickError", "ToolError"]


class WiretickError(Exception):
    """An error with a message a person can act on."""


class ToolError(WiretickError):
    """An external tool (Yosys, nextpnr, ecppack, Verilator, a compiler) failed.

    Parameters
    ----------
    tool : str
        The tool's name as a user would type it.
    message : str
        What went wrong, in a sentence.
    log : path, optional
        The tool's full log, named in the message.
    tail : str, optional
        The last lines of that log, kept for callers that want to show them.
    """

    def __init__(self, tool: str, message: str, *, log: str | Path | None = None, tail: str = ""):
        self.tool = tool
        self.log = Path(log) if log is not None else None
        self.tail = tail
        text = f"{tool}: {message}"
        if self.log is not None:
            text += f" (log: {self.log})"
        super().__init__(text)
