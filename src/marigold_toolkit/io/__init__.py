"""Files: robust reading of input images, atomic writers of arrays and PNGs, and the dataset file plumbing
(data roots, split files, decoders) shared by training and evaluation datasets."""
