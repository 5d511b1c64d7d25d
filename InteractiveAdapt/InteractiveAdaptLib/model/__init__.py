"""The network and the shipped base model: where it is found (installed or in a checkout), its files and
loading. Below the engine: nothing here imports InteractiveAdaptLib.engine."""
