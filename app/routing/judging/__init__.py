"""The LM judge: its DSPy program, prompt adapter, votes, retries and hedges."""
