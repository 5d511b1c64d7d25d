"""The engine: the interactive session and what it is made of (the case, predictor, guidance maps,
losses, online adaptation, forgetting guard) around the network of model/. Plain Python + torch; never
imports Slicer or Qt."""
