"""The ``lab`` command line (Typer)."""
