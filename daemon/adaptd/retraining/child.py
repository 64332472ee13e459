"""Entry point of the training child: ``python -m adaptd.retraining.child SPEC.json``.

The child owns its thread budget and memory; the daemon only watches it. It reports through the
spec's progress file, one JSON object per line: ``{"type": "progress", ...}`` while training,
then exactly one ``{"type": "result", ...}`` or ``{"type": "error", "message": ...}``. A child
killed before writing a result has failed, whatever files it left behind.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from adaptd.retraining.spec import Progress, TrainSpec

logger = logging.getLogger("adaptd.retraining.child")


class ProgressWriter:
    """Appends report lines and flushes each, so the parent sees them as they happen."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def progress(self, progress: Progress) -> None:
        self.write({"type": "progress", **progress.to_dict()})

    def close(self) -> None:
        self._file.close()


def run(spec_path: Path) -> int:
    spec = TrainSpec.from_dict(json.loads(spec_path.read_text(encoding="utf-8")))
    writer = ProgressWriter(Path(spec.progress_file))
    try:
        from adaptd.retraining.trainer import train

        result = train(spec, writer.progress)
    except MemoryError:
        writer.write({"type": "error", "message": "out of memory while training"})
        return 1
    except Exception as e:  # the parent records the reason; a traceback goes to stderr
        logger.exception("training failed")
        writer.write({"type": "error", "message": f"{type(e).__name__}: {e}"})
        return 1
    writer.write({"type": "result", **result.to_dict()})
    writer.close()
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: python -m adaptd.retraining.child SPEC.json\n")
        return 2
    logging.basicConfig(
        level=os.environ.get("ADAPTD_CHILD_LOG", "WARNING"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return run(Path(argv[0]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
