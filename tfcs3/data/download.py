"""Optional download of MovieLens from GroupLens, with checksum verification.

Only for users who are online; nothing in tests or CI downloads. Every extracted file is checked
against a known digest before it is kept, and files are written atomically (temporary name, then
rename), so an interrupted download never leaves a half-written dataset behind.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from tfcs3.data.raw import DataFormatError
from tfcs3.progress import progress

GROUPLENS = "https://files.grouplens.org/datasets/movielens/"

# name -> (zip file, folder inside the zip, {file: ("sha256" | "gitblob", hex digest)})
RELEASES = {
    "ml-100k": (
        "ml-100k.zip",
        "ml-100k",
        {
            "u.data": ("sha256", "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490"),
            "u.user": ("sha256", "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c"),
            "u.item": ("sha256", "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701"),
        },
    ),
    "ml-1m": (
        "ml-1m.zip",
        "ml-1m",
        {
            "users.dat": ("sha256", "1dc3a95300cb19f7c10e027daf29b8cdf1d908dab65b5edfb45950aa389a10a3"),
            "movies.dat": ("sha256", "0140fc2356357c1a851d0f52e893a1e4d3696df632c4141cea8d5bc3d621f0b9"),
            # The GroupLens ratings.dat is known by its git blob id in many public copies.
            "ratings.dat": ("gitblob", "77a7c4b150f588c23bb9e1f068aa996c0b413695"),
        },
    ),
}


def digest(data: bytes, kind: str) -> str:
    """sha256 of ``data``, or its git blob id (sha1 of ``b"blob <size>\\0" + data``)."""
    if kind == "sha256":
        return hashlib.sha256(data).hexdigest()
    if kind == "gitblob":
        return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    raise ValueError(f"unknown digest kind {kind!r}")


def extract_verified(archive: bytes, name: str, target_dir: str | Path) -> Path:
    """Extracts the verified files of release ``name`` from zip bytes into ``target_dir``."""
    _, folder, files = RELEASES[name]
    target = Path(target_dir)
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        for filename, (kind, expected) in files.items():
            try:
                data = zf.read(f"{folder}/{filename}")
            except KeyError:
                raise DataFormatError(f"{name} archive has no {folder}/{filename}") from None
            got = digest(data, kind)
            if got != expected:
                raise DataFormatError(
                    f"{name}/{filename}: {kind} {got} does not match the expected {expected}; "
                    "the download is corrupt or not the GroupLens release"
                )
            fd, tmp = tempfile.mkstemp(dir=target, prefix=f".{filename}.")
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, target / filename)
    return target


def download_movielens(name: str, target_dir: str | Path, timeout: float = 60.0) -> Path:
    """Downloads ``ml-100k`` or ``ml-1m`` from GroupLens into ``target_dir`` and verifies it."""
    if name not in RELEASES:
        raise ValueError(f"can download {sorted(RELEASES)}, not {name!r}")
    if os.environ.get("TFCS3_NO_DOWNLOAD"):
        raise DataFormatError(f"not downloading {name}: TFCS3_NO_DOWNLOAD is set")
    url = GROUPLENS + RELEASES[name][0]
    print(f"Downloading {url} ...", flush=True)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (fixed https URL)
            size = int(response.headers.get("Content-Length") or 0) or None
            chunks = iter(lambda: response.read(1 << 16), b"")
            archive = b"".join(progress(chunks, total=size and -(-size // (1 << 16)), desc=name, unit="64KiB"))
    except OSError as err:
        raise DataFormatError(f"could not download {url}: {err}") from err
    return extract_verified(archive, name, target_dir)
