"""A logging handler that keeps formatted records in memory (for the smoke test)."""

import logging

RECORDS: list = []


class MemoryHandler(logging.Handler):
    def emit(self, record):
        try:
            RECORDS.append(self.format(record))
        except Exception:  # noqa: BLE001 - never break the app over a log record
            self.handleError(record)
