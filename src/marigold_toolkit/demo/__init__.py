"""The bundled demo models' own machinery: :mod:`.pretrain` trains the small SD2-layout generative base
(``marigold pretrain-base``) that ``recipes/demo.py`` fine-tunes with the Marigold protocol."""
