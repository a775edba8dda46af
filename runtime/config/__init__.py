"""Runtime configuration: the settings (`RUNTIME_*` variables, CLI flags) and where the model file
comes from."""
