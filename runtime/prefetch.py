"""`python -m runtime.prefetch`: fetch and verify the configured model into the cache, print its path.

Used to bake a model into an image and to warm a host's cache before the first start.
"""

import sys

from pydantic import ValidationError

from runtime.config.model_source import ModelSourceError, resolve_model
from runtime.config.settings import RuntimeSettings, describe_settings_error


def main() -> int:
    try:
        model = resolve_model(RuntimeSettings())
    except ValidationError as error:
        print(describe_settings_error(error), file=sys.stderr)
        return 2
    except ModelSourceError as error:
        print(f"prefetch: {error}", file=sys.stderr)
        return 1
    print(model.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
