"""``python -m rocoft_llm.cli`` (torchrun, the SLURM job script) runs the same command line."""

from . import main

if __name__ == "__main__":
    main()
