"""The LM simulator: an OpenAI-compatible server that answers judge prompts, and its launcher."""
