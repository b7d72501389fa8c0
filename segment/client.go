package segment

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/convoy-dl/convoy/internal/redact"
)

// MaxRedirects bounds a redirect chain.
const MaxRedirects = 10

// maxHeaderBytes bounds the response headers a server may send, so memory
// stays bounded whatever the server does.
const maxHeaderBytes = 1 << 20

// ClientOptions shapes the HTTP client used for probes and segments.
type ClientOptions struct {
	// Connections is the number of parallel connections; the transport keeps
	// at least that many per host.
	Connections int
	// HeaderTimeout bounds the wait for response headers (0: 30s).
	HeaderTimeout time.Duration
	// Insecure skips TLS certificate verification.
	Insecure bool
	// RootCAs, when set, replaces the system roots.
	RootCAs *x509.CertPool
	// AllowDowngrade permits a redirect from https to http.
	AllowDowngrade bool
	// Proxy, when set, is the proxy for every request, to http and https
	// servers alike and to loopback ones too, in the form ParseProxy reads.
	// One that ParseProxy refuses fails every request: nothing goes around
	// a proxy the caller asked for.
	//
	// Empty: HTTP_PROXY for http and HTTPS_PROXY for https (or
	// http_proxy, https_proxy), read when the client is made, as Go's
	// net/http reads them: never for localhost and loopback addresses,
	// HTTP_PROXY not in a CGI program, and a SOCKS proxy there resolves
	// names itself. A variable that is set but is no proxy URL fails the
	// requests it would carry.
	Proxy string
	// NoProxy lists the hosts reached without a proxy, as curl reads
	// NO_PROXY: separated by commas or spaces, host names (each matching
	// itself and its subdomains; a leading "." or "*." changes nothing), IP
	// addresses and CIDR ranges, any of them with ":PORT" to match that
	// port only; "*" matches every host. Empty: NO_PROXY (or no_proxy) from
	// the environment; a list of separators only, such as ",", is an empty
	// list that overrides it.
	NoProxy string
}

// NewClient returns a client for segment traffic: HTTP/1.1 only, so every
// connection is its own TCP connection; no transparent compression, which
// would break range arithmetic; proxies as o.Proxy and o.NoProxy say; no overall
// timeout, since that would bound a whole body; redirects limited to
// MaxRedirects, to http and https, and never from https to http unless
// allowed.
func NewClient(o ClientOptions) *http.Client {
	conns := max(o.Connections, 1)
	headerTimeout := o.HeaderTimeout
	if headerTimeout <= 0 {
		headerTimeout = 30 * time.Second
	}
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	proxies := newProxies(o, dialer)
	t := &http.Transport{
		Proxy:                  proxies.transportProxy,
		OnProxyConnectResponse: onConnectResponse,
		DialContext:            proxies.dialContext,
		TLSHandshakeTimeout:    15 * time.Second,
		ResponseHeaderTimeout:  headerTimeout,
		ExpectContinueTimeout:  time.Second,
		DisableCompression:     true,
		MaxIdleConns:           conns * 2,
		MaxIdleConnsPerHost:    conns * 2,
		IdleConnTimeout:        90 * time.Second,
		ReadBufferSize:         16 << 10, // reads into a copy buffer as large go past it
		MaxResponseHeaderBytes: maxHeaderBytes,
		WriteBufferSize:        16 << 10,
		TLSClientConfig: &tls.Config{
			InsecureSkipVerify: o.Insecure, //nolint:gosec // the user asked for it with --insecure
			RootCAs:            o.RootCAs,
		},
	}
	t.Protocols = new(http.Protocols)
	t.Protocols.SetHTTP1(true)
	return &http.Client{
		Transport:     proxyTransport{t, proxies},
		CheckRedirect: checkRedirect(o.AllowDowngrade),
	}
}

func checkRedirect(allowDowngrade bool) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if len(via) >= MaxRedirects {
			return &RedirectError{fmt.Sprintf("stopped after %d redirects (last to %s)", MaxRedirects, redact.Parsed(req.URL))}
		}
		switch req.URL.Scheme {
		case "http", "https":
		default:
			return &RedirectError{fmt.Sprintf("refusing redirect to %s: only http and https are followed", redact.Parsed(req.URL))}
		}
		if prev := via[len(via)-1]; prev.URL.Scheme == "https" && req.URL.Scheme == "http" && !allowDowngrade {
			return &RedirectError{fmt.Sprintf("refusing redirect from https to plain http (%s)", redact.Parsed(req.URL))}
		}
		req.Header = HeadersFor(req.Header, via[0].URL, req.URL)
		return nil
	}
}

// safeHeaders may follow a request to any host; every other header the
// user set (an API key, a token, a cookie) stays with the host it was meant
// for.
var safeHeaders = map[string]bool{
	"User-Agent": true, "Accept": true, "Accept-Encoding": true, "Accept-Language": true,
	"Range": true, "If-Range": true,
}

// HeadersFor returns the request headers to send to to, for a request the
// user addressed to from: all of them for the same host or a subdomain of
// it, else only those that carry no credentials. h is not modified.
func HeadersFor(h http.Header, from, to *url.URL) http.Header {
	if from != nil && to != nil && sameOrSubdomain(to.Hostname(), from.Hostname()) {
		return h
	}
	safe := http.Header{}
	for k, vs := range h {
		if safeHeaders[http.CanonicalHeaderKey(k)] {
			safe[k] = vs
		}
	}
	return safe
}

// sameOrSubdomain reports whether host is parent or a name under it. Only a
// DNS name has subdomains: an IP address has none, and an IPv6 literal
// whose zone ends in the name (fe80::1%.example.com) is not under it.
func sameOrSubdomain(host, parent string) bool {
	host, parent = strings.ToLower(host), strings.ToLower(parent)
	if host == parent {
		return true
	}
	if strings.ContainsAny(host, ":%") || net.ParseIP(parent) != nil {
		return false
	}
	return strings.HasSuffix(host, "."+parent)
}

// RedirectError is a redirect the client refused to follow; it is final.
type RedirectError struct{ Reason string }

func (e *RedirectError) Error() string { return e.Reason }
