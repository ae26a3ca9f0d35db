"""``pipeline diagnose`` declares itself to the frame (:mod:`pipeline.registry`): a tool with its ``[diagnose]``
section.

Its run folder (``saved_models/diagnose/`` by default) is written through :func:`pipeline.workarea.new_run`
and records the kind ``diagnose``.
"""

from __future__ import annotations

from pipeline import registry
from pipeline.tools.diagnose.sections import DiagnoseConfig

registry.register_section("diagnose", DiagnoseConfig, owner="diagnose")
TOOL = registry.register_tool(registry.Tool("diagnose", sections=("diagnose",)))
