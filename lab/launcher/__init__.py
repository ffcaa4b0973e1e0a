"""The one-machine launcher: SeaweedFS, database, JupyterHub with the lab API as its service, sample data."""
