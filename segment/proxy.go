package segment

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"

	"golang.org/x/net/proxy"

	"github.com/convoy-dl/convoy/internal/redact"
)

// ParseProxy reads a proxy URL: scheme http (taken when raw has none, as
// curl does), https (TLS to the proxy), socks5 (names resolved here) or
// socks5h (names resolved by the proxy); a host; a port from 1 to 65535,
// else the scheme's own (80, 443, 1080). A user name and password in it go
// to the proxy. The error's text shows raw with its secrets redacted.
func ParseProxy(raw string) (*url.URL, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, errors.New(`"" is not a proxy URL`)
	}
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the unredacted URL
		}
		return nil, fmt.Errorf("%q is not a proxy URL: %v", redact.URL(raw), err)
	}
	switch u.Scheme {
	case "http", "https", "socks5", "socks5h":
	default:
		return nil, fmt.Errorf("%s is not a proxy URL convoy can use: the scheme is http, https, socks5 or socks5h", redact.Parsed(u))
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("proxy %s has no host", redact.Parsed(u))
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("proxy %s has port %s; a port is a number from 1 to 65535", redact.Parsed(u), p)
		}
	}
	return u, nil
}

// ProxyError is a failure at a proxy rather than at the server behind it:
// the proxy could not be reached or refused the tunnel, or its URL is not
// one.
type ProxyError struct {
	// Proxy is the proxy's URL, redacted; "" when there is none to show.
	Proxy string
	// Status is the proxy's answer when it refused a CONNECT ("407 Proxy
	// Authentication Required"), Code its number; "" and 0 otherwise.
	Status string
	Code   int
	// Err is the cause, when there is one.
	Err error
	// final marks a failure that trying again cannot cure.
	final bool
}

func (e *ProxyError) Error() string {
	switch {
	case e.Status != "":
		return fmt.Sprintf("proxy %s refused to open a tunnel: %s", e.Proxy, e.Status)
	case e.Proxy == "":
		return e.Err.Error() // it says which proxy, as ParseProxy's errors do
	}
	return fmt.Sprintf("proxy %s: %v", e.Proxy, e.Err)
}

func (e *ProxyError) Unwrap() error { return e.Err }

// Temporary reports whether trying again may succeed: not for a proxy URL
// that is none, wrong credentials, or a CONNECT refused with a status that
// StatusError.Temporary calls final; otherwise it depends on the cause.
// IsPermanent takes a ProxyError that is not Temporary for final.
func (e *ProxyError) Temporary() bool {
	if e.Code != 0 {
		return (&StatusError{Code: e.Code}).Temporary()
	}
	return !e.final
}

// proxies chooses the proxy of each request and dials through a SOCKS
// proxy given in ClientOptions. It is immutable once made.
type proxies struct {
	// forHTTP and forHTTPS are the proxies of http and https URLs (nil:
	// none); badHTTP and badHTTPS, when set, fail such requests instead.
	forHTTP, forHTTPS *url.URL
	badHTTP, badHTTPS error
	// given marks a proxy from ClientOptions.Proxy, which loopback
	// addresses use too; the environment's do not.
	given  bool
	bypass noProxy
	socks  proxy.ContextDialer // dials through a given SOCKS proxy
	direct *net.Dialer
}

// newProxies reads o.Proxy and o.NoProxy, and the environment where they
// leave it in force.
func newProxies(o ClientOptions, direct *net.Dialer) *proxies {
	p := &proxies{direct: direct, given: o.Proxy != ""}
	list := o.NoProxy
	if list == "" {
		list = getenvAny("NO_PROXY", "no_proxy")
	}
	p.bypass = parseNoProxy(list)
	if !p.given {
		httpVar := "HTTP_PROXY"
		if os.Getenv("REQUEST_METHOD") != "" {
			httpVar = "" // a CGI program: a client's "Proxy:" header may have set HTTP_PROXY
		}
		p.forHTTP, p.badHTTP = fromEnv(httpVar)
		p.forHTTPS, p.badHTTPS = fromEnv("HTTPS_PROXY")
		return p
	}
	u, err := ParseProxy(o.Proxy)
	if err != nil {
		p.badHTTP = &ProxyError{Err: err, final: true}
		p.badHTTPS = p.badHTTP
		return p
	}
	p.forHTTP, p.forHTTPS = u, u
	if isSOCKS(u) {
		var auth *proxy.Auth
		if u.User != nil {
			auth = &proxy.Auth{User: u.User.Username()}
			auth.Password, _ = u.User.Password()
		}
		d, err := proxy.SOCKS5("tcp", hostPort(u), auth, direct)
		cd, ok := d.(proxy.ContextDialer)
		if err != nil || !ok { // neither happens with golang.org/x/net/proxy today
			p.badHTTP = &ProxyError{Proxy: redact.Parsed(u), Err: fmt.Errorf("no SOCKS client: %v", err), final: true}
			p.badHTTPS = p.badHTTP
			return p
		}
		p.socks = cd
	}
	return p
}

// fromEnv reads the proxy in the variable name, or in its lower-case form
// when it is empty. The error names the variable and shows the value
// redacted.
func fromEnv(name string) (*url.URL, error) {
	if name == "" {
		return nil, nil
	}
	v := getenvAny(name, strings.ToLower(name))
	if v == "" {
		return nil, nil
	}
	u, err := ParseProxy(v)
	if err != nil {
		return nil, &ProxyError{Err: fmt.Errorf("%s in the environment: %v", name, err), final: true}
	}
	return u, nil
}

func getenvAny(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}

func isSOCKS(u *url.URL) bool { return u.Scheme == "socks5" || u.Scheme == "socks5h" }

// hostPort is u's host and port, the scheme's port when u names none.
func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443", "socks5": "1080", "socks5h": "1080"}[u.Scheme]
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// forURL returns the proxy for a request to u: nil for none.
func (p *proxies) forURL(u *url.URL) (*url.URL, error) {
	px, bad := p.forHTTP, p.badHTTP
	if u.Scheme == "https" {
		px, bad = p.forHTTPS, p.badHTTPS
	}
	if bad != nil {
		return nil, bad
	}
	if px == nil {
		return nil, nil
	}
	host, port, err := net.SplitHostPort(hostPort(u))
	if err != nil || p.bypass.match(host, port) {
		return nil, err
	}
	if !p.given && isLoopback(host) {
		return nil, nil // as Go's net/http does with the environment's proxies
	}
	return px, nil
}

func isLoopback(host string) bool {
	a, err := netip.ParseAddr(host)
	return strings.EqualFold(host, "localhost") || err == nil && a.Unmap().IsLoopback()
}

// transportProxy is the Transport's Proxy: the proxy of an http or https
// one; a SOCKS proxy given in ClientOptions is dialContext's to use.
func (p *proxies) transportProxy(req *http.Request) (*url.URL, error) {
	px, err := p.forURL(req.URL)
	if err != nil || px == nil || (p.given && isSOCKS(px)) {
		return nil, err
	}
	return px, nil
}

// dialContext connects to addr through the SOCKS proxy given in
// ClientOptions unless addr bypasses it; with socks5 the name is resolved
// here, with socks5h by the proxy. Without such a proxy it dials directly.
func (p *proxies) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if p.socks == nil {
		return p.direct.DialContext(ctx, network, addr)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if p.bypass.match(host, port) {
		return p.direct.DialContext(ctx, network, addr)
	}
	targets := []string{addr}
	if _, err := netip.ParseAddr(host); err != nil && p.forHTTP.Scheme == "socks5" {
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, err
		}
		if len(ips) == 0 {
			return nil, &net.AddrError{Err: "no address found", Addr: host}
		}
		targets = targets[:0]
		for _, ip := range ips {
			targets = append(targets, net.JoinHostPort(ip.Unmap().String(), port))
		}
	}
	for _, t := range targets {
		var c net.Conn
		if c, err = p.socks.DialContext(ctx, network, t); err == nil {
			return c, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, &ProxyError{Proxy: redact.Parsed(p.forHTTP), Err: proxyConnectError(network, p.forHTTP, err), final: socksRefusal(err)}
}

// socksRefusal reports whether a SOCKS dial failed because the proxy will
// not have us (wrong or missing credentials), which no retry cures.
// golang.org/x/net/proxy says so only in words.
func socksRefusal(err error) bool {
	s := err.Error()
	return strings.Contains(s, "authentication failed") || strings.Contains(s, "no acceptable authentication methods")
}

// onConnectResponse turns a proxy's refusal of a CONNECT into a
// ProxyError naming the proxy and its answer.
func onConnectResponse(_ context.Context, proxyURL *url.URL, _ *http.Request, resp *http.Response) error {
	if resp.StatusCode/100 == 2 {
		return nil
	}
	status := resp.Status
	if status == "" {
		status = strconv.Itoa(resp.StatusCode)
	}
	return &ProxyError{Proxy: redact.Parsed(proxyURL), Status: status, Code: resp.StatusCode}
}

// proxyTransport names the proxy in errors of connections to it.
type proxyTransport struct {
	*http.Transport
	proxies *proxies
}

func (t proxyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.Transport.RoundTrip(req)
	var (
		op  *net.OpError
		pxe *ProxyError // from dialContext, already named
	)
	if err != nil && !errors.As(err, &pxe) && errors.As(err, &op) && op.Op == "proxyconnect" {
		if px, _ := t.proxies.forURL(req.URL); px != nil {
			err = &ProxyError{Proxy: redact.Parsed(px), Err: proxyConnectError(op.Net, px, op.Err)}
		}
	}
	return resp, err
}

// proxyConnectError is a failure to reach or use the proxy px, as net/http
// reports one (a net.OpError "proxyconnect") but with the proxy's address,
// which net/http leaves out: code that looks for the address that failed
// finds the proxy's, not the server's.
func proxyConnectError(network string, px *url.URL, err error) error {
	return &net.OpError{Op: "proxyconnect", Net: network, Addr: proxyAddr(hostPort(px)), Err: err}
}

// proxyAddr is a proxy's host:port as a net.Addr.
type proxyAddr string

func (a proxyAddr) Network() string { return "tcp" }
func (a proxyAddr) String() string  { return string(a) }

// noProxy is a list of hosts that bypass the proxy, as curl reads
// NO_PROXY: see ClientOptions.NoProxy.
type noProxy struct {
	all     bool
	entries []noProxyEntry
}

type noProxyEntry struct {
	name   string       // a host name matching itself and its subdomains, or ""
	prefix netip.Prefix // else an address or a range
	port   string       // "" for any port
}

func parseNoProxy(list string) noProxy {
	var np noProxy
	for _, f := range strings.FieldsFunc(strings.ToLower(list), func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t'
	}) {
		if f == "*" {
			np.all = true
			continue
		}
		e := noProxyEntry{name: f}
		if h, p, err := net.SplitHostPort(f); err == nil {
			e.name, e.port = h, p
		}
		e.name = strings.TrimSuffix(strings.Trim(e.name, "[]"), ".")
		if pr, err := netip.ParsePrefix(e.name); err == nil {
			e.name, e.prefix = "", pr.Masked()
		} else if a, err := netip.ParseAddr(e.name); err == nil {
			e.name, e.prefix = "", netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		} else {
			e.name = strings.TrimPrefix(strings.TrimPrefix(e.name, "*"), ".")
		}
		if e.name != "" || e.prefix.IsValid() {
			np.entries = append(np.entries, e)
		}
	}
	return np
}

// match reports whether a request to host and port bypasses the proxy.
func (np noProxy) match(host, port string) bool {
	if np.all {
		return true
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	addr, err := netip.ParseAddr(host)
	isIP := err == nil
	for _, e := range np.entries {
		switch {
		case e.port != "" && e.port != port:
		case e.prefix.IsValid():
			if isIP && e.prefix.Contains(addr.Unmap()) {
				return true
			}
		case !isIP && (host == e.name || strings.HasSuffix(host, "."+e.name)):
			return true
		}
	}
	return false
}
