"""One `pulumi.ComponentResource` per concern; each takes a frozen args dataclass."""
