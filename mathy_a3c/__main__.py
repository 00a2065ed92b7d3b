"""``python -m mathy_a3c`` is the same as the ``mathy`` command."""

from .cli import app

app(prog_name="mathy")
