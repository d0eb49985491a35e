"""`rocoft-llm export-gguf`: a merged RoCoFT llama model written with the gguf package's writer loads back
through transformers' GGUF loader with the merged model's logits (F32 exactly, F16 / Q8_0 within a
stated tolerance) and the same tokenizer ids; non-llama models and existing files are refused."""

import pytest
import torch
from click.testing import CliRunner
from transformers import AutoModelForCausalLM, AutoTokenizer

from rocoft_llm import RoCoFTConfig, apply_rocoft, save_adapter
from rocoft_llm.cli import main
from rocoft_llm.errors import RoCoFTError
from rocoft_llm.models.gguf_export import export_gguf
from rocoft_llm.rocoft.merge_dir import merge_to_directory
from tests.helpers.models import merged_llama, tiny_model

pytest.importorskip("gguf")
#: max |logit difference| / max |logit| after a round trip, per output type
REL_TOL = {"f32": 0.0, "f16": 2e-3, "q8_0": 6e-2}  # measured: 0, 1.1e-3, 3.7e-2


def test_gguf_round_trip_through_transformers(tmp_path):
    merged = merged_llama(tmp_path)
    hf = AutoModelForCausalLM.from_pretrained(merged).eval()
    ids = torch.randint(3, 460, (2, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = hf(ids).logits
    for outtype, tol in REL_TOL.items():
        res = CliRunner().invoke(
            main,
            ["export-gguf", str(merged), "--out", str(tmp_path / f"m-{outtype}.gguf"), "--outtype", outtype],
        )
        assert res.exit_code == 0, res.output
        back = AutoModelForCausalLM.from_pretrained(
            tmp_path, gguf_file=f"m-{outtype}.gguf", dtype=torch.float32
        )
        with torch.no_grad():
            err = (back.eval()(ids).logits - want).abs().max() / want.abs().max()
        assert err <= tol, (outtype, float(err))
        if outtype != "f32":
            assert err > 0  # really stored at lower precision
    text = "Below is an instruction. the correct answer is true"
    tok = AutoTokenizer.from_pretrained(merged)
    assert (
        AutoTokenizer.from_pretrained(tmp_path, gguf_file="m-f32.gguf")(text).input_ids == tok(text).input_ids
    )


def test_gguf_export_refuses_non_llama_and_existing_files(tmp_path):
    bloom = tmp_path / "bloom"
    tiny_model("bloom").save_pretrained(bloom)
    with pytest.raises(RoCoFTError, match="llama-architecture models only.*'bloom'"):
        export_gguf(bloom, tmp_path / "b.gguf")
    assert not list(tmp_path.glob("*.gguf")) and not list(tmp_path.glob(".b.gguf*"))
    gemma = tmp_path / "gemma3"
    tiny_model("gemma3_text").save_pretrained(gemma)
    with pytest.raises(RoCoFTError, match=r"'gemma3_text' \(llama.cpp's gemma3 GGUF.*1 \+ w.*export-peft"):
        export_gguf(gemma, tmp_path / "g.gguf")
    assert not list(tmp_path.glob("*.gguf")) and not list(tmp_path.glob(".g.gguf*"))
    (tmp_path / "taken.gguf").write_text("x")
    with pytest.raises(RoCoFTError, match="already exists.*--overwrite"):
        export_gguf(bloom, tmp_path / "taken.gguf")
    assert (tmp_path / "taken.gguf").read_text() == "x"


def test_a_killed_exports_temporary_is_removed_by_the_next_export(tmp_path):
    """kill -9 during export-gguf left a .NAME.*.tmp file no rerun removed; it now carries the dead
    writer's pid and the next export of that name removes it (a live writer's is left alone)."""
    import os
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait(timeout=30)
    stale = tmp_path / f".m.gguf.tmp-{dead.pid}-abc.tmp"
    stale.write_bytes(b"\0" * 4096)
    live = tmp_path / f".m.gguf.tmp-{os.getpid()}-live.tmp"
    live.write_bytes(b"\0")
    out = export_gguf(merged_llama(tmp_path), tmp_path / "m.gguf", "f16")
    assert out.is_file() and not stale.exists() and live.exists()
    assert out.stat().st_mode & 0o777 == 0o666 & ~_umask()  # mkstemp alone gives 0600


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_fields_of_a_gguf_base_are_kept_through_convert_merge_and_export(tmp_path, monkeypatch):
    """A base that arrived as GGUF: its tokenizer.* and general.* fields (here a pre-tokenizer name
    llama.cpp keys its regex on, and a licence) reach the exported finetuned model unchanged."""
    from gguf import GGUFReader

    from rocoft_llm.models import gguf_export
    from rocoft_llm.models.gguf_import import convert_gguf

    def text(reader, key):
        return reader.fields[key].contents()

    merged = merged_llama(tmp_path / "src")  # its merged model becomes the GGUF source
    rebuilt = gguf_export._add_tokenizer

    def distinctive(writer, model_dir, config):
        made = rebuilt(writer, model_dir, config)
        writer.add_tokenizer_pre("smollm")  # replaces "default"
        writer.add_license("test-licence")
        return made

    monkeypatch.setattr(gguf_export, "_add_tokenizer", distinctive)
    export_gguf(merged, tmp_path / "source.gguf")
    monkeypatch.setattr(gguf_export, "_add_tokenizer", rebuilt)
    source = GGUFReader(str(tmp_path / "source.gguf"))

    base = convert_gguf(tmp_path / "source.gguf", tmp_path / "base")
    assert (base / "gguf_source_metadata.json").is_file()
    model = apply_rocoft(AutoModelForCausalLM.from_pretrained(base), RoCoFTConfig(mode="column", rank=2))
    save_adapter(model, tmp_path / "adapter", base_model=str(base))
    finetuned = merge_to_directory(str(base), tmp_path / "adapter", tmp_path / "merged", progress=False)

    export_gguf(finetuned, tmp_path / "kept.gguf", "q8_0")
    kept = GGUFReader(str(tmp_path / "kept.gguf"))
    assert text(kept, "tokenizer.ggml.pre") == "smollm"
    assert text(kept, "general.license") == "test-licence"
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type"):
        assert text(kept, key) == text(source, key), key
    assert kept.fields["general.file_type"].contents() != source.fields["general.file_type"].contents()

    (finetuned / "gguf_source_metadata.json").unlink()  # without the kept fields: rebuilt, "default"
    export_gguf(finetuned, tmp_path / "rebuilt.gguf")
    assert text(GGUFReader(str(tmp_path / "rebuilt.gguf")), "tokenizer.ggml.pre") == "default"
    export_gguf(finetuned, tmp_path / "from-file.gguf", metadata_from=tmp_path / "source.gguf")
    assert text(GGUFReader(str(tmp_path / "from-file.gguf")), "tokenizer.ggml.pre") == "smollm"


def test_kept_fields_of_another_vocabulary_are_refused(tmp_path):
    import json

    merged = merged_llama(tmp_path)
    export_gguf(merged, tmp_path / "source.gguf")
    from rocoft_llm.models.gguf_metadata import read_gguf_metadata, save_metadata

    fields = read_gguf_metadata(tmp_path / "source.gguf")
    fields["tokenizer.ggml.tokens"]["value"] = fields["tokenizer.ggml.tokens"]["value"][:-1]
    save_metadata(merged, fields)
    vocab = json.loads((merged / "config.json").read_text())["vocab_size"]
    with pytest.raises(RoCoFTError, match=f"{vocab - 1:,} tokens but .* vocab_size {vocab:,}.*delete"):
        export_gguf(merged, tmp_path / "out.gguf")
    assert not list(tmp_path.glob("*out.gguf*"))
