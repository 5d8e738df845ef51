"""The files the labextension build reads, and their SHA-256 digests.

``tools/build-labextension.sh`` writes this manifest into the built output as
``sources.sha256``; ``tests/test_labextension_files.py`` recomputes it from
``labextension/`` and fails when the two differ, i.e. when the committed bundle
was not built from the committed sources. The format is ``sha256sum``'s
(``<hex>  <path>``, paths relative to ``labextension/``, sorted), so
``cd labextension && sha256sum -c <output>/sources.sha256`` checks it too.

Usage: ``python3 tools/labextension_sources.py [LABEXTENSION_DIR]`` prints the
manifest. Standard library only: the test must stay fast and need no Node.js.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parents[1] / "labextension"
# Everything tsc and jupyter-builder read from labextension/: the TypeScript
# sources, the style sheet the bundle embeds, the compiler settings, and the
# package files that choose the dependencies (package-lock.json pins the
# shared-module versions the builder writes into the bundle). README.md,
# node_modules/ and lib/ (tsc's output) are not inputs.
SOURCE_FILES = ("package.json", "package-lock.json", "tsconfig.json")
SOURCE_TREES = ("src", "style")


def source_paths(source_dir: Path = SOURCE_DIR) -> list[str]:
    """The build's input files, relative to ``source_dir``, sorted."""
    paths = [name for name in SOURCE_FILES if (source_dir / name).is_file()]
    for tree in SOURCE_TREES:
        paths += [p.relative_to(source_dir).as_posix() for p in (source_dir / tree).rglob("*") if p.is_file()]
    return sorted(paths)


def digests(source_dir: Path = SOURCE_DIR) -> dict[str, str]:
    """``{relative path: SHA-256 hex digest}`` of every build input."""
    return {path: hashlib.sha256((source_dir / path).read_bytes()).hexdigest() for path in source_paths(source_dir)}


def render(manifest: dict[str, str]) -> str:
    """The manifest as ``sha256sum`` prints it."""
    return "".join(f"{digest}  {path}\n" for path, digest in sorted(manifest.items()))


def parse(text: str) -> dict[str, str]:
    """Read a manifest written by :func:`render`."""
    manifest = {}
    for line in text.splitlines():
        digest, sep, path = line.partition("  ")
        if not sep or not path:
            raise ValueError(f"not a sha256sum line: {line!r}")
        manifest[path] = digest
    return manifest


if __name__ == "__main__":
    sys.stdout.write(render(digests(Path(sys.argv[1]) if len(sys.argv) > 1 else SOURCE_DIR)))
