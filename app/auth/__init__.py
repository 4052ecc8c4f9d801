"""API keys: who asks (``Principal``), what they may see (grants) and how much they may spend."""
