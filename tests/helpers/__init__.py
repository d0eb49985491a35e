"""Test helpers, one place for all of them: repository paths (``paths``), tiny recipes
(``recipes``), tiny tokenizers (``tokenizers``), tiny models (``models``), launching torchrun
(``torchrun``), loading a benchmark script's functions (``bench``) and fake SLURM commands
(``fake_slurm/``). Tests import them as ``tests.helpers.<module>``: pytest puts the repository root
on the path because ``tests`` is a package (no ``sys.path`` edits anywhere)."""
