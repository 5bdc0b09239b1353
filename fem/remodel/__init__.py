"""Drug effects on trabecular bone: surface moves, BMU remodelling, mineralisation."""
