"""Foundation: the HTTP choke point, errors, retry, rate limits, logs, crypto, input parsing."""
