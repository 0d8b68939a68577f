"""siamgui: image verification with Siamese networks, as a desktop app and a CLI."""

__version__ = "0.1.0"
