"""saesite: static, offline, searchable feature-visualiser sites for sparse autoencoders."""

__version__ = "0.1.0"
