"""sealion: run, evaluate and build Gemma-SEA-LION-v4.5-E2B-IT-style models."""

__version__ = "0.1.0"
