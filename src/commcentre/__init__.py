"""commcentre: message gateway for a police Communications Centre."""

__version__ = "0.1.0"
