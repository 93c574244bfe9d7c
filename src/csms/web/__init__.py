"""Pages for people: the customer web app at ``/`` and the operator dashboard at
``/operator``.

Static HTML, CSS and one small vanilla script per page, calling the JSON API
with a bearer token kept in ``sessionStorage``: nothing to build, no npm, no
third-party code, nothing fetched from another origin. The operator page is kept
live by Server-Sent Events from ``/api/v1/operator/events``.
"""
