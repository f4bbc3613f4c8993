"""The ASGI application for uvicorn workers: `mizumori_server.main:app`."""

import sys

from uvicorn.config import STARTUP_FAILURE

from mizumori_server import accesslog, keys
from mizumori_server.app import create_app

# The mizumori.* loggers (access log, ingest refusals, background) to standard error.
accesslog.configure_logging()
try:
    app = create_app()
except keys.Refused as e:
    # One line, no traceback; STARTUP_FAILURE also stops uvicorn's parent from starting the
    # worker again and again.
    print(f"mizumori: {e}", file=sys.stderr)
    sys.exit(STARTUP_FAILURE)
