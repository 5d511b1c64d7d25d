"""The engine: the interactive session and what it is made of (network, predictor, guidance maps,
losses, online adaptation, forgetting guard). Plain Python + torch; never imports Slicer or Qt."""
