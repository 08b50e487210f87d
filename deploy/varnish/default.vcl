# Varnish in front of the feeds service: keeps every feed and page as long as the origin's
# s-maxage says (a day when FEEDS_PURGE_URLS names this node), and drops exactly what changed
# when the indexer purges by surrogate key. Needs the xkey vmod (Debian: varnish-modules).
#
#   varnishd -a :80 -f /etc/varnish/default.vcl -s malloc,256m
#   FEEDS_PURGE_URLS=http://127.0.0.1:80/ (on the indexer's host; see the acl below)
vcl 4.1;

import std;
import xkey;

# The origin: `flask --app app serve` (granian and the indexer), `make run`, or any server of the app.
backend origin {
    .host = "127.0.0.1";
    .port = "8000";
    .connect_timeout = 1s;
    .first_byte_timeout = 10s;
    # Can the origin answer? A HEAD of the site's feed is answered from its render cache in well
    # under a millisecond (/healthz looks at the whole index: at 100k articles it takes 0.2 to
    # 0.7 s, and a busy origin would be taken for a dead one). Sick after three failed probes of
    # five: then stale copies are served for up to stale-if-error.
    .probe = {
        .request =
            "HEAD /feeds/rss.xml HTTP/1.1"
            "Host: localhost"
            "Connection: close";
        .interval = 1s;
        .timeout = 2s;
        .window = 5;
        .threshold = 3;
        .initial = 3;
    }
}

# Who may purge: the host of the indexer (`flask --app app index --watch`).
acl purgers {
    "127.0.0.1";
    "::1";
}

sub vcl_recv {
    if (req.method == "PURGE") {
        if (client.ip !~ purgers) {
            return (synth(403, "Forbidden"));
        }
        if (!req.http.xkey-purge) {
            return (synth(400, "No xkey-purge header"));
        }
        # A hard purge: the next request fetches the new bytes. (A soft purge would let a copy
        # within its grace be served once more, and an edit would not show on the next poll.)
        set req.http.x-purged = xkey.purge(req.http.xkey-purge);
        return (synth(200, "Purged " + req.http.x-purged));
    }
    unset req.http.Cookie;
    # The origin varies its answers only by gzip or not. Each is kept as the origin made it, so
    # that no request pays for unzipping: a plain copy beside the gzip one.
    if (req.http.Accept-Encoding !~ "(?i)gzip" || req.http.Accept-Encoding ~ "(?i)gzip\s*;\s*q=0(\.0*)?\s*(,|$)") {
        set req.http.x-feeds-plain = "1";
    } else {
        unset req.http.x-feeds-plain;
    }
    if (std.healthy(req.backend_hint)) {
        # With the origin up, a copy past its lifetime is served only within stale-while-revalidate
        # (keep in step with FEEDS_STALE_WHILE_REVALIDATE), while it is fetched again behind it.
        set req.grace = 60s;
    }
}

sub vcl_hash {
    if (req.http.x-feeds-plain) {
        hash_data("plain");
    }
    # On to the built-in vcl_hash: the URL and the host.
}

sub vcl_backend_fetch {
    if (bereq.http.x-feeds-plain) {
        # Varnish asks every backend for gzip; the plain copy is asked for plain.
        unset bereq.http.Accept-Encoding;
        unset bereq.http.x-feeds-plain;
    }
}

sub vcl_backend_response {
    # Answers to a refetch that failed never replace the last good copy: keep serving that one.
    if (beresp.status >= 500 && bereq.is_bgfetch) {
        return (abandon);
    }
    if (beresp.status == 404) {
        # A feed that does not exist yet (a topic's first article) may exist in a moment.
        set beresp.ttl = 2s;
        set beresp.grace = 0s;
        return (deliver);
    }
    # Grace up to stale-if-error: served while the origin is sick (vcl_recv limits it otherwise).
    if (beresp.http.Cache-Control ~ "stale-if-error=[0-9]+") {
        set beresp.grace = std.duration(
            regsub(beresp.http.Cache-Control, "^.*stale-if-error=([0-9]+).*$", "\1") + "s", 60s);
    }
    # Past grace a copy is still kept to revalidate with If-None-Match: the origin answers 304.
    set beresp.keep = 1d;
}

sub vcl_deliver {
    # Surrogate keys are for this cache; readers need none of them.
    unset resp.http.xkey;
    unset resp.http.Surrogate-Key;
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
}
