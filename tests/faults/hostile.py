"""File names an attacker (or an unlucky camera) gives a datasource."""

from __future__ import annotations

HOSTILE_KEYS = [
    "plain/ok.png",
    "nl/a\nfile:/etc/passwd.png",
    "crlf/b\r\nc.png",
    "%2e%2e/%2e%2e/etc/passwd.png",
    "q/what?x=1&y=2.png",
    "h/frag#top.png",
    "sp/with space  two.png",
    "uni/ünïcödé 日本 🐱.png",
    "quote/\"double' single.png",
    "markup/<script>alert(1)</script>.png",
    "pct/100%.png",
    "semi/a;b,c.png",
    "tab/a\tb.png",
    "back/sla\\sh.png",
    "dots/..hidden...png",
]
