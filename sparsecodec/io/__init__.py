"""Storage backends: the container file (``container``)."""
