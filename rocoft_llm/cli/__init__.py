"""The ``rocoft-llm`` command line: one module per topic, each thin (parse, load the config, call
one function of the library). This module builds the group from them.

``python -m rocoft_llm.cli ...`` (what torchrun and the SLURM script launch) is the same CLI.
"""

from __future__ import annotations

import logging
import sys

import click

from ..errors import RoCoFTError
from ..version import __version__
from .cluster import doctor, slurm
from .data import prepare
from .evaluation import eval_cmd, score
from .generation import generate
from .models import convert_gguf, export_gguf, export_peft, fetch_model, merge
from .recipe import recipes, validate
from .training import select, train

EXAMPLES = """
\b
Examples:
  rocoft-llm validate recipes/llama2-7b-math.yaml
  rocoft-llm prepare --recipe recipes/llama2-7b-math.yaml data.llm_adapters_dir=~/LLM-Adapters
  torchrun --nproc-per-node 8 -m rocoft_llm.cli train recipes/llama2-7b-math.yaml
  rocoft-llm eval --run runs/llama2-7b-math --tasks gsm8k,svamp --llm-adapters-dir ~/LLM-Adapters
  rocoft-llm generate --run runs/llama2-7b-math --prompt "What is 15% of 80?"
  rocoft-llm merge --base meta-llama/Llama-2-7b-hf --adapter runs/llama2-7b-math/adapter --out merged/
  rocoft-llm slurm recipes/llama2-13b-math.yaml train.micro_batch_size=1 --nodes 2 --gpus-per-node 8
"""


def _line_buffered() -> None:
    """stdout written line by line, as stderr is: piped into one file or ``tee``, a command's results
    (stdout: "run written to ...", tables) and its progress and log lines (stderr) keep the order in
    which they were written, instead of stdout arriving in one block when its buffer fills or at exit."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(line_buffering=True)
        except (AttributeError, ValueError, OSError):  # not a text stream that can change (a test's capture)
            pass


def _setup_logging(verbose: bool) -> None:
    _line_buffered()
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(message)s", stream=sys.stderr
    )
    for noisy in ("transformers", "torch", "datasets", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class FriendlyGroup(click.Group):
    """Prints rocoft-llm's own errors as one clear message (exit 2) instead of a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RoCoFTError as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(2)
        except OSError as e:  # a write the OS refused that no check foresaw: the same one message
            from ..io_utils import os_error_message

            message = os_error_message(e)
            if message is None:
                raise
            click.echo(f"error: {message}", err=True)
            ctx.exit(2)


@click.group(cls=FriendlyGroup, epilog=EXAMPLES)
@click.version_option(__version__, prog_name="rocoft-llm")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool) -> None:
    """rocoft-llm: finetune LLMs by training only r rows or r columns of each weight (RoCoFT).

    Every command takes local paths wherever it takes a Hub id, and nothing downloads unless you
    name a Hub id on a machine that reaches the Hub.
    """
    _setup_logging(verbose)


COMMANDS = (
    # recipes and data
    validate,
    recipes,
    prepare,
    # training
    train,
    select,
    # evaluation
    eval_cmd,
    score,
    generate,
    # model files
    merge,
    export_peft,
    export_gguf,
    fetch_model,
    convert_gguf,
    # clusters
    slurm,
    doctor,
)
for _command in COMMANDS:
    main.add_command(_command)
