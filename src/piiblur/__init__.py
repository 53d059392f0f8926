"""pii-blur: find faces and licence plates in photos and panoramas and blur them."""

__version__ = "0.1.0"

from piiblur.detections import CLASSES, Detections

__all__ = ["CLASSES", "Detections", "__version__"]
