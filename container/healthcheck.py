"""Docker HEALTHCHECK: healthy once /readyz answers 200 (the model is loaded)."""

import os
import sys
import urllib.request

url = f"http://127.0.0.1:{os.environ.get('RUNTIME_PORT', '8000')}/readyz"
try:
    with urllib.request.urlopen(url, timeout=4) as response:
        sys.exit(0 if response.status == 200 else 1)
except OSError as error:
    print(f"healthcheck: {url}: {error}", file=sys.stderr)
    sys.exit(1)
