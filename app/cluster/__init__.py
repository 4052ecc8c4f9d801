"""What replicas share through Redis: the LM limits now, the route cache later."""
