"""The WSGI entry point: `flask --app app run`, `gunicorn app:app`, `granian --interface wsgi app:app`."""

from feeds import create_app

app = create_app()
