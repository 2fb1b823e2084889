// Package dirserve is the seed's directory HTTP service: it serves the
// seed's newest signed consensus (and the few before it, by digest) to
// clients, with cache headers, gzip and a per-client rate limit (SPEC.md
// §5, DESIGN.md G9).
//
// Routes (HTTP/1.1, GET or HEAD; any other method on a known path is 405
// with "Allow: GET, HEAD"; any other path is 404):
//
//	GET /veil/v1/consensus
//	    The newest signed consensus, byte for byte as the seed signed it.
//	    200: Content-Type application/octet-stream; ETag "<hex digest>"
//	    (the lowercase hex SHA-256 of the document, SPEC.md §5.1);
//	    Cache-Control "public, max-age=<seconds until fresh-until, ≥ 0>";
//	    Last-Modified = valid-after; Expires = fresh-until.
//	    If-None-Match naming the document (weak comparison, or "*"): 304.
//	    Accept-Encoding allowing gzip: the body is gzip-compressed once per
//	    document at Publish, with Content-Encoding gzip and the weak ETag
//	    W/"<hex digest>" (same document, different bytes). Every response
//	    carries Vary: Accept-Encoding.
//	    503 with Retry-After while no document has been published.
//	    X-Veil-Diff-From naming, as lowercase hex digests, documents the
//	    client holds: when one is kept as a base (Bases: every document
//	    published in the last DiffBaseAge) and the diff from it is shorter
//	    than the document, the shortest such diff instead, with
//	    Content-Type application/x-veil-consensus-diff and the weak ETag
//	    (SPEC.md §5.7); then Vary also names X-Veil-Diff-From.
//
//	GET /veil/v1/consensus/<64 lowercase hex digits>
//	    The document with that digest if it is one of the last KeepDocuments
//	    published, with the headers above except Cache-Control
//	    "public, max-age=31536000, immutable" (a digest names one document
//	    forever); else 404.
//
// Every request is first charged to its client's token bucket, keyed by
// the connection's remote address only (never a header such as
// X-Forwarded-For, which the client writes): IPv4 addresses one by one,
// IPv6 by /64, since one IPv6 host commonly holds a whole /64. A client
// over its limit gets 429 with Retry-After. The table of buckets holds at
// most MaxClients entries and drops the least recently seen, so a flood of
// distinct addresses costs bounded memory. Serve also handles at most
// MaxConns connections at once, with read, write and idle timeouts and
// 8 KiB of request headers.
package dirserve
