"""`python -m optimus` is the `optimus` command."""
from optimus.cli import app

app(prog_name="optimus")
