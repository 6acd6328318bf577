"""OCR beyond the engine: reading order and layout of the lines an OCR engine finds, and the result."""
