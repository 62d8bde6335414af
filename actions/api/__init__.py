"""The REST API (DRF), versioned under /api/v1/."""
