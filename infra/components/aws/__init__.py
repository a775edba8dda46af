"""AWS side of the program: the GPU origin (network, image, capacity, service) and the audit-log bucket."""
