"""Developer tools that Slicer never installs: data sets and benchmark cases, training, evaluation,
benchmarks, the demo and reports. They add sub-commands to `interactive-adapt` when installed."""
