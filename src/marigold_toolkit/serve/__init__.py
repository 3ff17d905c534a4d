"""Serving: the REST API (``marigold serve``, FastAPI + uvicorn) with request batching, and the web app."""
