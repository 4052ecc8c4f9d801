"""The route memory: what past routes, feedback and query logs teach about a source's tables.

``sql_reading`` reads tables and join conditions from SQL; ``entries`` turns import rows and
feedback into entries (reporting bad rows); ``route_memory`` keeps each source's index and mined
joins (``app.routing.retrieval``) in step with the store; ``commands`` is ``tablerouter memory``.
"""
