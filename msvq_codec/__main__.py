"""``python -m msvq_codec`` runs the CLI."""

from msvq_codec.cli import main

main()
