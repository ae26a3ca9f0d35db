"""``pipeline forecast`` declares itself to the frame (:mod:`pipeline.registry`): the forecasting task, run by
its own command, with its ``[forecast]`` section.

Its run folder (``saved_models/forecast/`` by default) is written through :func:`pipeline.workarea.new_run`
and records the kind ``forecast``.
"""

from __future__ import annotations

from pipeline import registry
from pipeline.forecast.sections import ForecastConfig

registry.register_section("forecast", ForecastConfig, owner="forecast")
TOOL = registry.register_tool(registry.Tool("forecast", sections=("forecast",)))
