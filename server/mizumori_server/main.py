"""The ASGI application for uvicorn workers: `mizumori_server.main:app`."""

from mizumori_server.app import create_app

app = create_app()
