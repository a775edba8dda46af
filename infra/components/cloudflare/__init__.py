"""Cloudflare side of the program: edge storage (D1, KV, R2) and the Worker, the model artifact in R2, Zero
Trust (Access, Gateway DLP) and the origin tunnel."""
