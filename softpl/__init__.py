"""softpl: continuous hard/soft pseudo-labeling (slimIPL) for ASR as an ESPnet2 plugin."""

__version__ = "0.1.0"
