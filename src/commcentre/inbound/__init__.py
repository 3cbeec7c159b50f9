"""Partner webhooks in: signature check, inbox deduplication, decoding, storage."""
