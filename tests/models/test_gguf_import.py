"""GGUF import errors, without downloading: files written with the `gguf` package's own writer
(not a GGUF at all, an architecture transformers cannot read, a truncated file), and a recipe
naming a .gguf is routed through the converter exactly once (cache hit the second time)."""

import numpy as np
import pytest
from click.testing import CliRunner

from rocoft_llm.cli import main
from rocoft_llm.errors import RoCoFTError
from rocoft_llm.models import gguf_import
from rocoft_llm.models.gguf_import import check_gguf_file, convert_gguf, materialize_model


def write_gguf(path, arch: str, tensors: int = 1):
    import gguf

    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(1)
    for i in range(tensors):
        w.add_tensor(f"blk.0.t{i}.weight", np.ones((64, 64), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_not_a_gguf_file(tmp_path):
    bad = tmp_path / "model.gguf"
    bad.write_text("hello, not a model")
    with pytest.raises(RoCoFTError, match=r"is not a GGUF file.*b'hell'"):
        convert_gguf(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    result = CliRunner().invoke(main, ["convert-gguf", str(bad), str(tmp_path / "out")])
    assert result.exit_code == 2 and "is not a GGUF file" in result.output
    with pytest.raises(RoCoFTError, match="does not exist"):
        check_gguf_file(tmp_path / "missing.gguf")


def test_architecture_transformers_cannot_read(tmp_path):
    path = write_gguf(tmp_path / "odd.gguf", "notanarch")
    with pytest.raises(RoCoFTError, match=r"cannot read this GGUF model's architecture.*llama"):
        convert_gguf(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_truncated_file(tmp_path):
    path = write_gguf(tmp_path / "t.gguf", "llama", tensors=4)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(RoCoFTError, match="probably truncated or corrupt"):
        convert_gguf(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_recipe_gguf_converts_once(tmp_path, monkeypatch):
    """materialize_model: a .gguf path is converted on first use and reused from the cache after."""
    monkeypatch.setenv("ROCOFT_CACHE", str(tmp_path / "cache"))
    src = write_gguf(tmp_path / "m.gguf", "llama")
    calls = []

    def fake_convert(path, out, overwrite=False, **k):
        calls.append(path)
        out.mkdir(parents=True)
        digest = gguf_import.sha256_file(path)
        (out / gguf_import.MARKER).write_text(f'{{"source_sha256": "{digest}"}}')
        return out

    monkeypatch.setattr(gguf_import, "convert_gguf", fake_convert)
    first = materialize_model(str(src))
    second = materialize_model(str(src))
    assert first == second and len(calls) == 1
    assert first.startswith(str(tmp_path / "cache" / "models" / "gguf-"))
    assert materialize_model("some/hf-dir") == "some/hf-dir"  # anything else is untouched
