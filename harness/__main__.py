"""`python -m harness ...` is `drbench ...`: the form torchrun launches (`torchrun -m harness run RECIPE`)."""

from harness.cli import app

app(prog_name="drbench")
