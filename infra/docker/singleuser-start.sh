#!/bin/sh
# Copy the example notebooks into the user's home once (never over their edits), then start.
set -eu
mkdir -p "$HOME/notebooks"
for nb in /opt/lab/notebooks/*.ipynb; do
  [ -e "$HOME/notebooks/$(basename "$nb")" ] || cp "$nb" "$HOME/notebooks/"
done
exec "$@"
