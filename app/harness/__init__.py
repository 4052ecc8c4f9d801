"""Launchers shared by tests and benchmarks: the service in-process, replicas as processes, scratch stores."""
