"""Log lines pass through the redactor, so a text quoted in an error never reaches the journal.

adaptd's own log calls never format a text (checked by tests/integration/test_privacy.py); this
filter is the net under libraries and exception messages that might (a JSON decode error quoting
the body, a driver error quoting a row). It runs on the handler adaptd installs, in every mode but
full, and is off when ``privacy.log_texts`` (a debug switch) says texts may be logged.
"""

from __future__ import annotations

import logging

from adaptd.privacy.redact import redact
from adaptd.privacy.settings import PrivacySettings


class RedactingFilter(logging.Filter):
    def __init__(self, settings: PrivacySettings) -> None:
        super().__init__()
        self.kinds = tuple(settings.detect)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad %-format is the logging module's to report, not ours
            return True
        record.msg = redact(message, self.kinds).text
        record.args = None
        if record.exc_info:
            # the formatter would render the traceback after the filter: render and redact it
            # here (formatters print exc_text when set and exc_info is gone)
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(text, self.kinds).text
            record.exc_info = None
        return True


def log_filter(settings: PrivacySettings) -> logging.Filter | None:
    if settings.text == "full" or settings.log_texts:
        return None
    return RedactingFilter(settings)
