"""``pipeline lsm`` declares itself to the frame (:mod:`pipeline.registry`): a tool with its ``[lsm]`` section.

Its run folder (``saved_models/lsm/`` by default) is written through :func:`pipeline.workarea.new_run`
and records the kind ``lsm``.
"""

from __future__ import annotations

from pipeline import registry
from pipeline.tools.lsm.sections import LsmConfig

registry.register_section("lsm", LsmConfig, owner="lsm")
TOOL = registry.register_tool(registry.Tool("lsm", sections=("lsm",)))
