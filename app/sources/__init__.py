"""The sources the service routes over: their catalog snapshots, refresh and state."""
