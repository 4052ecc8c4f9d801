"""The evaluation harness: table recall on Spider-format benchmarks, through the real service.

``spider`` loads schemas and questions and extracts gold tables from gold SQL; ``naming`` fits
names into the warehouse's identifier rules; ``warehouse`` creates the schemas in PostgreSQL
or SQLite; ``runner`` serves the app and routes every question over HTTP; ``metrics`` and
``report`` score, print, save and plot; ``cli`` is ``tablerouter eval``.
"""
