"""qdht: a post-quantum secure Kademlia DHT for private peer-to-peer applications, on Trio."""

from qdht import errors

__version__ = "0.1.0.dev0"

__all__ = ["__version__", "errors"]
