"""Download, HERE, the wheels the GPU machine needs for bench/gpu_check.sh, into .whl/ (git-ignored).

The GPU image has torch (CUDA), numpy, pyarrow, click, pyyaml, ... but no datasets or deepspeed,
and its transformers / peft may be other versions than the ones this checkout is tested with.
Nothing can be fetched there, so this script takes the dependency closure of rocoft-llm's training
stack as installed in THIS environment (exact versions, read from the installed metadata), leaves
out what the image provides and must not be replaced (torch and its CUDA libraries, numpy, pyarrow,
pandas, ...), and downloads cp312 manylinux wheels of the rest (~29 MiB); deepspeed, a source
distribution, is built as its pure-Python wheel (its ops are JIT-built on the GPU machine).

    .venv/bin/python bench/gpu_wheels.py           # then a device run with carry [".whl"]:
                                                    #   bash bench/gpu_check.sh   (installs .whl/)
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOTS = [
    "transformers",
    "tokenizers",
    "huggingface-hub",
    "safetensors",
    "peft",
    "accelerate",
    "datasets",
    "deepspeed",
    "filelock",
    "bitsandbytes",  # model.quantize (the kit's NF4 memory step)
]
# provided by the GPU image and tied to its CUDA build or too large to carry: never replaced
KEEP_IMAGE = {
    "torch",
    "triton",
    "numpy",
    "pandas",
    "pyarrow",
    "sympy",
    "mpmath",
    "networkx",
    "jinja2",
    "markupsafe",
    "setuptools",
    "pillow",
    "psutil",
    "ninja",
    "pyyaml",
    "packaging",
    "tqdm",
    "regex",
    "requests",
    "urllib3",
    "idna",
    "certifi",
    "charset-normalizer",
    "fsspec",
    "aiohttp",
    "xxhash",
    "msgpack",
    "einops",
    "py-cpuinfo",
    "nvidia-ml-py",
    "python-dateutil",
    "pytz",
    "tzdata",
    "six",
    "click",
    "rich",
    "pygments",
    "markdown-it-py",
    "mdurl",
    "shellingham",
    "anyio",
    "sniffio",
    "h11",
}
SOURCE_ONLY = {"deepspeed"}
#: bitsandbytes' wheel holds one native library per CUDA / ROCm / XPU version (~140 MiB unpacked):
#: only those of the image's CUDA major version (and the CPU one) are kept, ~4 MiB compressed
BNB_LIBRARY = re.compile(r"^bitsandbytes/libbitsandbytes_(\w+?)\.(so|dll|dylib)$")


def slim_wheel(path: Path, keep: str) -> int:
    """Rewrite the wheel at ``path`` without the bitsandbytes native libraries whose suffix does not
    start with ``keep`` (e.g. ``cuda13``) or ``cpu``, and without their RECORD lines (so pip
    installs it cleanly); returns the bytes saved."""
    import zipfile

    before = path.stat().st_size
    tmp = path.with_suffix(".slim")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        dropped = set()
        for info in src.infolist():
            m = BNB_LIBRARY.match(info.filename)
            if m and not m.group(1).startswith((keep, "cpu")):
                dropped.add(info.filename)
        for info in src.infolist():
            if info.filename in dropped:
                continue
            data = src.read(info)
            if info.filename.endswith(".dist-info/RECORD"):
                lines = data.decode().splitlines(keepends=True)
                data = "".join(line for line in lines if line.split(",", 1)[0] not in dropped).encode()
            dst.writestr(info, data)
    tmp.replace(path)
    return before - path.stat().st_size


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(roots: list[str], python_version: str) -> dict[str, str]:
    """{name: installed version} of ``roots`` and everything they require on the target Python
    (environment markers evaluated for it; extras ignored)."""
    from packaging.requirements import Requirement

    env = {
        "python_version": python_version,
        "python_full_version": f"{python_version}.0",
        "extra": "",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "os_name": "posix",
    }
    seen: dict[str, str] = {}
    todo = list(roots)
    while todo:
        name = norm(todo.pop())
        if name in seen or name in KEEP_IMAGE or name.startswith(("nvidia-", "cuda-")):
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            sys.exit(
                f"{name} is not installed here; run `make install` first (this script copies its versions)"
            )
        seen[name] = dist.version
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate(env):
                todo.append(req.name)
    return seen


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dest", default=str(REPO / ".whl"))
    ap.add_argument("--python-version", default="3.12", help="the GPU image's Python (KINDS.md)")
    ap.add_argument(
        "--bnb-cuda",
        default="cuda13",
        help="bitsandbytes native libraries to keep (the image's torch CUDA major)",
    )
    args = ap.parse_args()
    dest = Path(args.dest)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    versions = closure(ROOTS, args.python_version)
    binary = [f"{n}=={v}" for n, v in sorted(versions.items()) if n not in SOURCE_ONLY]
    platforms = [
        f"--platform={p}"
        for p in (
            "manylinux_2_28_x86_64",
            "manylinux_2_17_x86_64",
            "manylinux2014_x86_64",
            "manylinux1_x86_64",
        )
    ]
    pip = [sys.executable, "-m", "pip"]
    subprocess.run(
        [
            *pip,
            "download",
            "-q",
            "--no-deps",
            "--only-binary=:all:",
            f"--python-version={args.python_version}",
            "--implementation=cp",
            *platforms,
            "-d",
            str(dest),
            *binary,
        ],
        check=True,
        timeout=900,
    )
    for name in sorted(SOURCE_ONLY & set(versions)):
        subprocess.run(
            [
                *pip,
                "wheel",
                "-q",
                "--no-deps",
                "--no-build-isolation",
                "-w",
                str(dest),
                f"{name}=={versions[name]}",
            ],
            check=True,
            timeout=900,
            env={**os.environ, "DS_BUILD_OPS": "0"},
        )
    for wheel in dest.glob("bitsandbytes-*.whl"):
        print(
            f"{wheel.name}: kept only the {args.bnb_cuda} and cpu libraries, -{slim_wheel(wheel, args.bnb_cuda) / 2**20:.0f} MiB"
        )
    wheels = sorted(dest.glob("*.whl"))
    size = sum(w.stat().st_size for w in wheels)
    for w in wheels:
        print(f"{w.stat().st_size / 2**20:7.2f} MiB  {w.name}")
    print(
        f"{len(wheels)} wheels, {size / 2**20:.1f} MiB in {dest} (carry it: the device's limit is 64 MiB with the tree)"
    )


if __name__ == "__main__":
    main()
