"""The logger the engine uses for its per-trigger line: assembled once, yet reconfigurable."""

from __future__ import annotations

import logging

import structlog
from structlog.testing import capture_logs

from lifecycle.logs import BoundOnce


def test_the_assembled_logger_is_reused_while_the_configuration_stays() -> None:
    bound = BoundOnce("lifecycle.test")
    assert bound.get() is bound.get()


def test_a_new_level_takes_effect_on_the_next_line() -> None:
    bound = BoundOnce("lifecycle.test")
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    with capture_logs() as quiet:
        bound.get().info("transition", trigger="pay")
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    with capture_logs() as heard:
        bound.get().info("transition", trigger="ship")
    assert quiet == []
    assert [(e["event"], e["trigger"]) for e in heard] == [("transition", "ship")]


def test_captured_logs_see_lines_of_a_logger_assembled_before_the_capture() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    bound = BoundOnce("lifecycle.test")
    bound.get()
    with capture_logs() as heard:
        bound.get().warning("timer.failed", attempts=2)
    assert [(e["event"], e["log_level"]) for e in heard] == [("timer.failed", "warning")]
