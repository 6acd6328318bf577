"""ImageSense: self-hosted image understanding on a CPU vision-language model."""

__version__ = "0.1.0"
