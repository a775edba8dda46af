"""The engines that own the model, and what runs requests on them: the service, fair queues, workers,
batched decoding, the fingerprint, metrics and load."""
