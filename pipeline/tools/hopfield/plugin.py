"""``pipeline hopfield`` declares itself to the frame (:mod:`pipeline.registry`): a tool with its ``[hopfield]``
section.

Its run folder (``saved_models/hopfield/`` by default) is written through :func:`pipeline.workarea.new_run`
and records the kind ``hopfield``.
"""

from __future__ import annotations

from pipeline import registry
from pipeline.tools.hopfield.sections import HopfieldConfig

registry.register_section("hopfield", HopfieldConfig, owner="hopfield")
TOOL = registry.register_tool(registry.Tool("hopfield", sections=("hopfield",)))
