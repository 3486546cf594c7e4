"""The REST API (FastAPI) and the dashboard, served by `optimus run` and `optimus serve`."""
