"""Store URLs, parsed once and strictly: no malformed URL reaches a client library, no message shows a credential.

A store URL is `http[s]://[user[:password]@]host[:port][/path]` (without a scheme, `host[:port][/path]` means
http). In a user name or password, `/`, `?`, `#` and `@` must be percent-encoded (`%2F`, `%3F`, `%23`, `%40`,
and `%25` for `%` itself): unencoded, the first `/`, `?` or `#` ends the host part early, and a client library
would read part of the password as the host or the port, and print it. `parse_store_url` refuses such a URL,
and every other malformed one (no host, a port that is not a number, spaces, an unknown scheme), with a
`ConfigError` that names the problem and shows the URL with its credentials, and anything that may be one,
as `***` (`errors.mask_one_url`). The credentials it returns are percent-decoded. `url_secrets` finds the credentials of any URL,
even a malformed one, for redaction.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import unquote

from splade_connectors.errors import ConfigError, mask_one_url

ENCODE_HINT = "percent-encode '/', '?', '#', '@' and '%' in credentials (%2F, %3F, %23, %40, %25)"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")  # as in errors.mask_one_url
_HOST = re.compile(r"^[A-Za-z0-9._~-]+$")
_IPV6 = re.compile(r"^[0-9A-Fa-f:.]+$")
_NO_SCHEME = re.compile(r"^[^/?#:@]+(:\d+)?([/?#]|$)")  # host[:port][/path], read as http


@dataclass(frozen=True)
class StoreUrl:
    """A parsed store URL: the URL without its credentials, and the credentials, percent-decoded."""

    url: str
    host: str
    port: int | None
    username: str | None = None
    password: str | None = None


def url_secrets(url: str | None) -> list[str]:
    """The password (or lone token) a URL holds before its last `@`, raw and percent-decoded; [] when none."""
    if not url:
        return []
    scheme = _SCHEME.match(url)
    rest = url[scheme.end() :] if scheme else url
    if "@" not in rest:
        return []
    userinfo = rest.rpartition("@")[0]
    user, colon, password = userinfo.partition(":")
    token = password if colon else user
    return [t for t in dict.fromkeys([token, unquote(token)]) if t]


def parse_store_url(url: str, *, what: str = "URL") -> StoreUrl:
    """Parse a store URL (see the module docstring); `ConfigError` naming `what` and the problem, credentials masked."""
    text = url.strip()

    def refuse(problem: str) -> ConfigError:
        return ConfigError(f"{what} {mask_one_url(text)}: {problem}")

    if not text:
        raise ConfigError(f"{what} is empty")
    if any(c.isspace() or unicodedata.category(c) == "Cc" for c in text):
        raise refuse("it holds a space or a control character (percent-encode it, e.g. %20 for a space)")
    scheme = _SCHEME.match(text)
    if scheme is not None:
        if scheme.group(1).lower() not in ("http", "https"):
            raise refuse(f"unsupported scheme {scheme.group(1)!r}: use http:// or https://")
        prefix, rest = text[: scheme.end()], text[scheme.end() :]
    elif "://" in text or "@" in text or not _NO_SCHEME.match(text):
        raise refuse("it does not start with http:// or https://")
    else:
        prefix, rest = "", text
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    if "@" in tail:
        raise refuse(f"an '@' after the host part (a character of the credentials ended it early): {ENCODE_HINT}")
    userinfo, at, hostport = authority.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username, password = unquote(user) or None, (unquote(secret) if colon else None)
    if hostport.startswith("["):  # [IPv6 address]:port
        close = hostport.find("]")
        host, after = (hostport[1:close], hostport[close + 1 :]) if close > 0 else ("", "?")
        if not _IPV6.match(host) or (after and not after.startswith(":")):
            raise refuse("its IPv6 address is not a valid [address]")
        port_text = after[1:] if after else None
    else:
        host, colon, port_text_or_empty = hostport.partition(":")
        port_text = port_text_or_empty if colon else None
        if host and host.isascii() and not _HOST.match(host):
            raise refuse("its host name holds characters a host name cannot have")
    if not host:
        raise refuse("it has no host")
    if port_text and not (port_text.isascii() and port_text.isdigit() and 1 <= int(port_text) <= 65535):
        numeric = port_text.isascii() and port_text.isdigit()
        hint = "" if at or numeric else f" (credentials go before an '@', as user:password@host:port after the scheme; {ENCODE_HINT})"
        raise refuse(f"its port is not a number from 1 to 65535{hint}")
    return StoreUrl(url=f"{prefix}{hostport}{tail}", host=host, port=int(port_text) if port_text else None,
                    username=username, password=password)
