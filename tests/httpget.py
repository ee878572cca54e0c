"""`python httpget.py URL SECONDS`: what `curl -fsS --max-time SECONDS URL` does, for
the checks of the tests (curl may not be installed): the body on stdout; an HTTP
error or no answer in time is a message on stderr and exit status 22 or 28."""
import sys
import urllib.error
import urllib.request

url, seconds = sys.argv[1], float(sys.argv[2])
try:
    with urllib.request.urlopen(url, timeout=seconds) as response:
        sys.stdout.write(response.read().decode())
except urllib.error.HTTPError as error:
    print(f"httpget: The requested URL returned error: {error.code}", file=sys.stderr)
    sys.exit(22)
except OSError as error:
    print(f"httpget: no answer: {error}", file=sys.stderr)
    sys.exit(28)
