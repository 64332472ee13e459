from __future__ import annotations

import json
import logging

from adaptd.logsetup import configure_logging


def test_json_lines_carry_level_logger_and_fields(capsys):
    configure_logging("INFO", json_lines=True)
    log = logging.getLogger("adaptd.test")
    log.info("swapped to %s", "abc", extra={"fields": {"version": "abc"}})
    logging.getLogger("adaptd.test").debug("hidden at INFO")
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["level"] == "INFO"
    assert record["logger"] == "adaptd.test"
    assert record["message"] == "swapped to abc"
    assert record["version"] == "abc"


def test_reconfiguring_replaces_the_handler(capsys):
    configure_logging("INFO")
    configure_logging("WARNING")
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "_adaptd", False)]
    assert len(ours) == 1
    logging.getLogger("adaptd.test").info("not shown")
    logging.getLogger("adaptd.test").warning("shown")
    err = capsys.readouterr().err
    assert "not shown" not in err
    assert "WARNING adaptd.test: shown" in err
