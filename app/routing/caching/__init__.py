"""Caches around the route and the judge: routes, verdicts, shared across replicas."""
