"""What agents act with: sandboxed commands and Python (``Sandbox``: bubblewrap when available, see
``sandbox.py``), workspace-confined file tools (``FileTools``), actions and their two formats
(``ToolSpec``, ``Action``), browser actions (``browser``).

    from seasoned.tools import Sandbox, Limits, FileTools
    box = Sandbox("/tmp/ws", Limits(time_s=10, memory_mb=512), ro_binds=["/srv/wheels"])
    box.isolation                     # "bwrap" (or a reported fallback: "namespaces", "guard")
    box.run("pytest -q").render()     # exit code + head/tail of the output
    FileTools("/tmp/ws").view("pkg/core.py", 1, 40)
"""

from seasoned.errors import PathOutsideWorkspace, ToolError

from .actions import Action, Param, ToolSpec, parse_text_action, parse_tool_call
from .files import FileTools, resolve_in
from .isolation import bwrap_available, isolation_report, namespaces_available
from .limits import Limits
from .sandbox import ExecResult, Sandbox

__all__ = ["Action", "ExecResult", "FileTools", "Limits", "Param", "PathOutsideWorkspace", "Sandbox", "ToolError",
           "ToolSpec", "bwrap_available", "isolation_report", "namespaces_available", "parse_text_action",
           "parse_tool_call", "resolve_in"]
