"""The web server's entry point: ``python run.py`` serves on HOST:PORT (127.0.0.1:5000)."""

import os

from my_app import create_app

if __name__ == "__main__":
    app = create_app()
    app.run(
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "5000")),
        threaded=True,
    )
