"""The route memory: what past routes, feedback and query logs teach about a source's tables.

``sql_reading`` reads tables and join conditions from SQL; ``entries`` turns import rows into
entries (reporting bad rows); ``route_memory`` keeps each source's index in step with the store
and answers lookups at route time; ``joins`` holds the join edges mined from SQL.
"""
