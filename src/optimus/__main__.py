"""`python -m optimus`: the same as the `optimus` command."""

from optimus.cli import app

if __name__ == "__main__":
    app()
