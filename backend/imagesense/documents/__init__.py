"""Documents (PDF): pages, their text layers and renders, and the per-page results built from them."""
