"""Download UniRef50/90/100 FASTA from UniProt's release site, resumable, with checksum.

    python scripts/download_uniref.py uniref50 --dest data/
    python scripts/download_uniref.py uniref50 --md5 <hex>          # verify a known checksum

The release directory (``--base-url``, default UniProt's current release) holds
``uniref50/uniref50.fasta.gz`` and ``uniref50/RELEASE.metalink``, an XML file listing each
file's size and MD5; the download is verified against it (or against ``--md5`` /
``--sha256``).  An interrupted download leaves ``<name>.part``; running the command again
continues it with an HTTP Range request (or restarts when the server ignores Range).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

DEFAULT_BASE_URL = "https://ftp.uniprot.org/pub/databases/uniprot/uniref"
DATASETS = ("uniref50", "uniref90", "uniref100")
BLOCK = 1 << 20


def file_url(base_url: str, dataset: str) -> str:
    return f"{base_url.rstrip('/')}/{dataset}/{dataset}.fasta.gz"


def metalink_url(base_url: str, dataset: str) -> str:
    return f"{base_url.rstrip('/')}/{dataset}/RELEASE.metalink"


def read_metalink(url: str, filename: str) -> dict:
    """``{"size": int | None, "md5": str | None}`` of ``filename`` from a metalink file."""
    with urllib.request.urlopen(url, timeout=60) as response:
        root = ET.fromstring(response.read())
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] == "file" and element.get("name") == filename:
            info: dict = {"size": None, "md5": None}
            for child in element.iter():
                tag = child.tag.rsplit("}", 1)[-1]
                if tag == "size" and child.text:
                    info["size"] = int(child.text.strip())
                elif tag == "hash" and child.get("type", "").lower() == "md5" and child.text:
                    info["md5"] = child.text.strip().lower()
            return info
    raise ValueError(f"{url}: no entry for {filename}")


def _digest_file(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(BLOCK):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, dest: Path, progress: bool = True) -> Path:
    """Fetch ``url`` to ``dest`` via ``dest.part``, resuming a partial file when possible."""
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url)
    if have and not url.startswith("file:"):
        request.add_header("Range", f"bytes={have}-")
    with urllib.request.urlopen(request, timeout=60) as response:
        status = getattr(response, "status", None)
        if url.startswith("file:") and have:
            response.read(have)  # local file: skip what we already have
            mode = "ab"
        elif have and status == 206:
            mode = "ab"
        else:
            have, mode = 0, "wb"  # the server sent the whole file
        total = response.headers.get("Content-Length")
        total = int(total) + (have if mode == "ab" and status == 206 else 0) if total else None
        with open(part, mode) as out:
            done = have
            while chunk := response.read(BLOCK):
                out.write(chunk)
                done += len(chunk)
                if progress and total:
                    print(f"\r{dest.name}: {done / 2**20:,.0f} / {total / 2**20:,.0f} MiB",
                          end="", file=sys.stderr)
    if progress:
        print(file=sys.stderr)
    os.replace(part, dest)
    return dest


def verify(path: Path, md5: str | None = None, sha256: str | None = None,
           size: int | None = None) -> None:
    if size is not None and path.stat().st_size != size:
        raise ValueError(f"{path}: size {path.stat().st_size} != expected {size}")
    for algorithm, expected in (("md5", md5), ("sha256", sha256)):
        if expected:
            actual = _digest_file(path, algorithm)
            if actual != expected.lower():
                raise ValueError(f"{path}: {algorithm} {actual} != expected {expected}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("dataset", choices=DATASETS)
    p.add_argument("--dest", default=".", help="directory to write <dataset>.fasta.gz into")
    p.add_argument("--base-url", default=DEFAULT_BASE_URL,
                   help="release directory (http(s):// or file://)")
    p.add_argument("--md5", help="expected MD5 (default: from RELEASE.metalink)")
    p.add_argument("--sha256", help="expected SHA-256")
    p.add_argument("--no-metalink", action="store_true",
                   help="do not read RELEASE.metalink (then --md5/--sha256 are the only check)")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)

    filename = f"{args.dataset}.fasta.gz"
    dest = Path(args.dest) / filename
    dest.parent.mkdir(parents=True, exist_ok=True)
    md5, size = args.md5, None
    try:
        if not args.no_metalink:
            info = read_metalink(metalink_url(args.base_url, args.dataset), filename)
            md5, size = md5 or info["md5"], info["size"]
        if not (md5 or args.sha256):
            print("warning: no checksum to verify against", file=sys.stderr)
        if dest.exists():
            verify(dest, md5, args.sha256, size)
            print(f"{dest} already downloaded and verified")
            return 0
        download(file_url(args.base_url, args.dataset), dest, progress=not args.quiet)
        try:
            verify(dest, md5, args.sha256, size)
        except ValueError:
            dest.rename(dest.with_name(dest.name + ".corrupt"))
            raise
    except (OSError, ValueError, ET.ParseError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"downloaded and verified {dest}")
    print(f"next: python scripts/prepare_data.py {dest} --workers 2")
    return 0


if __name__ == "__main__":
    sys.exit(main())
