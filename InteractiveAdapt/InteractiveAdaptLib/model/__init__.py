"""The shipped base model: where it is found (installed or in a checkout), its files and loading."""
