"""Pure renderers: a feed description in, the bytes of one format out."""
