"""The HTTP API: FastAPI application, problem responses, authentication."""
