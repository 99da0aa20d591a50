"""What the API answers: one response model per record, built from what store/ reads."""
