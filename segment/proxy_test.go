package segment

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/convoy-dl/convoy/internal/testproxy"
	"github.com/convoy-dl/convoy/internal/testserver"
)

func TestParseProxy(t *testing.T) {
	tests := []struct {
		in   string
		want string // the URL, or "" for an error
		says string // in the error
	}{
		{in: "http://127.0.0.1:3128", want: "http://127.0.0.1:3128"},
		{in: "127.0.0.1:3128", want: "http://127.0.0.1:3128"},
		{in: "proxy.example:8080", want: "http://proxy.example:8080"},
		{in: "u:p@proxy.example:8080", want: "http://u:p@proxy.example:8080"},
		{in: "HTTPS://proxy.example", want: "https://proxy.example"},
		{in: "socks5://[::1]:1080", want: "socks5://[::1]:1080"},
		{in: "socks5h://proxy.example", want: "socks5h://proxy.example"},
		{in: "socks4://proxy.example:1080", says: "the scheme is http, https, socks5 or socks5h"},
		{in: "ftp://proxy.example", says: "the scheme is http, https, socks5 or socks5h"},
		{in: "http://:3128", says: "proxy http://:3128 has no host"},
		{in: "socks5://", says: "has no host"},
		{in: "http://proxy.example:0", says: "has port 0; a port is a number from 1 to 65535"},
		{in: "http://u:hunter2@proxy.example:65536", says: "proxy http://REDACTED@proxy.example:65536 has port 65536"},
		{in: "http://proxy.example:socks", says: `invalid port ":socks"`},
		{in: "http://u:hunter2@proxy example:1/", says: "is not a proxy URL"},
		{in: " ", says: `"" is not a proxy URL`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			u, err := ParseProxy(tt.in)
			switch {
			case tt.want != "" && err != nil:
				t.Fatalf("error %v, want %s", err, tt.want)
			case tt.want != "" && u.String() != tt.want:
				t.Fatalf("got %s, want %s", u, tt.want)
			case tt.want == "" && err == nil:
				t.Fatalf("got %s, want an error saying %q", u, tt.says)
			case tt.want == "" && !strings.Contains(err.Error(), tt.says):
				t.Fatalf("error %q does not say %q", err, tt.says)
			case err != nil && strings.Contains(err.Error(), "hunter2"):
				t.Fatalf("error %q shows the password", err)
			}
		})
	}
}

func TestNoProxyMatch(t *testing.T) {
	tests := []struct {
		list, host, port string
		want             bool
	}{
		{"", "example.com", "80", false},
		{"*", "example.com", "80", true},
		{"a.test, *", "example.com", "80", true},
		{"example.com", "example.com", "80", true},
		{"example.com", "www.EXAMPLE.com.", "443", true},
		{"example.com", "notexample.com", "80", false},
		{"example.com", "example.com.evil", "80", false},
		{".example.com", "example.com", "80", true},
		{".example.com", "a.b.example.com", "80", true},
		{"*.example.com", "a.example.com", "80", true},
		{"example.com:8080", "example.com", "8080", true},
		{"example.com:8080", "example.com", "80", false},
		{"a.test,example.com b.test", "example.com", "80", true},
		{"127.0.0.1", "127.0.0.1", "80", true},
		{"127.0.0.1", "127.0.0.2", "80", false},
		{"127.0.0.0/8", "127.9.9.9", "80", true},
		{"10.0.0.0/8", "127.0.0.1", "80", false},
		{"127.0.0.1:8080", "127.0.0.1", "8081", false},
		{"::1", "::1", "80", true},
		{"[::1]:80", "::1", "80", true},
		{"fd00::/8", "fd12::1", "80", true},
		{"127.0.0.1", "::ffff:127.0.0.1", "80", true},
		{"127.0.0.1", "localhost", "80", false}, // names and addresses are not mixed
		{"localhost", "localhost", "80", true},
		{",", "example.com", "80", false},
	}
	for _, tt := range tests {
		if got := parseNoProxy(tt.list).match(tt.host, tt.port); got != tt.want {
			t.Errorf("NoProxy %q, host %s port %s: bypass %v, want %v", tt.list, tt.host, tt.port, got, tt.want)
		}
	}
}

// origin is a file server, over TLS when tls is set; its pool trusts it
// (and every proxy started with testproxy.TLS, which has the same
// certificate).
type origin struct {
	h    *testserver.Handler
	url  string
	pool *x509.CertPool
}

func newOrigin(t *testing.T, tls bool) origin {
	t.Helper()
	h := testserver.NewHandler(testserver.Size(300 << 10))
	var ts *httptest.Server
	if tls {
		ts = httptest.NewTLSServer(h)
	} else {
		ts = httptest.NewServer(h)
	}
	t.Cleanup(func() { h.Close(); ts.Close() })
	o := origin{h: h, url: ts.URL + h.FilePath(), pool: x509.NewCertPool()}
	if tls {
		o.pool.AddCert(ts.Certificate())
	}
	return o
}

// getAll GETs url with c and returns the body or the error.
func getAll(t *testing.T, c *http.Client, url string) ([]byte, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, newStatusError(resp, time.Now())
	}
	return io.ReadAll(resp.Body)
}

// Every kind of proxy carries the bytes: the proxy's counts show the
// connection, the tunnel or forwarded request, and at least the file's
// bytes sent to the client.
func TestClientThroughProxies(t *testing.T) {
	tests := []struct {
		name      string
		start     func(testing.TB, ...testproxy.Option) *testproxy.Proxy
		scheme    string // "" for the proxy's own
		originTLS bool
		forwarded bool // a plain http request forwarded, not a tunnel
	}{
		{"http-proxy/http", testproxy.NewHTTP, "", false, true},
		{"http-proxy/https-connect", testproxy.NewHTTP, "", true, false},
		{"socks5/http", testproxy.NewSOCKS5, "socks5", false, false},
		{"socks5/https", testproxy.NewSOCKS5, "socks5", true, false},
		{"socks5h/http", testproxy.NewSOCKS5, "socks5h", false, false},
		{"socks5h/https", testproxy.NewSOCKS5, "socks5h", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newOrigin(t, tt.originTLS)
			px := tt.start(t, testproxy.Credentials("alice", "pa55"))
			scheme, addr, _ := strings.Cut(px.URL, "://")
			if tt.scheme != "" {
				scheme = tt.scheme
			}
			c := newTestClient(t, ClientOptions{Proxy: scheme + "://alice:pa55@" + addr, NoProxy: ",", RootCAs: o.pool})
			body, err := getAll(t, c, o.url)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(body, o.h.Content()) {
				t.Fatalf("got %d bytes that differ from the %d-byte file", len(body), len(o.h.Content()))
			}
			s := px.Stats()
			if s.Conns != 1 || s.Bytes < int64(len(body)) || s.Refused != 0 {
				t.Errorf("proxy stats %+v: want 1 connection, at least %d bytes, none refused", s, len(body))
			}
			if tt.forwarded && (s.Forwarded != 1 || s.Tunnels != 0) || !tt.forwarded && (s.Forwarded != 0 || s.Tunnels != 1) {
				t.Errorf("proxy stats %+v: want forwarded %v", s, tt.forwarded)
			}
		})
	}
}

// An https proxy is reached over TLS, verified with the same roots as the
// servers, and tunnels CONNECT inside it.
func TestClientThroughHTTPSProxy(t *testing.T) {
	o := newOrigin(t, true)
	px := testproxy.NewHTTP(t, testproxy.TLS())
	c := newTestClient(t, ClientOptions{Proxy: px.URL, NoProxy: ",", RootCAs: o.pool})
	body, err := getAll(t, c, o.url)
	if err != nil || !bytes.Equal(body, o.h.Content()) {
		t.Fatalf("%d bytes, error %v", len(body), err)
	}
	if s := px.Stats(); s.Tunnels != 1 || s.Bytes < int64(len(body)) {
		t.Errorf("proxy stats %+v", s)
	}
	// Without the roots the proxy's certificate is not trusted.
	c = newTestClient(t, ClientOptions{Proxy: px.URL, NoProxy: ","})
	if _, err := getAll(t, c, o.url); err == nil || !IsPermanent(err) || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusted proxy: error %v, want a permanent certificate error", err)
	}
}

// With socks5 the client resolves the name and sends an address; with
// socks5h it sends the name and the proxy resolves it, even one only the
// proxy knows.
func TestSOCKS5ResolvesHereSOCKS5hThere(t *testing.T) {
	o := newOrigin(t, false)
	u, err := url.Parse(o.url)
	if err != nil {
		t.Fatal(err)
	}
	port := u.Port()
	px := testproxy.NewSOCKS5(t, testproxy.Host("origin.onion", "127.0.0.1"))
	addr := strings.TrimPrefix(px.URL, "socks5://")
	local := newTestClient(t, ClientOptions{Proxy: "socks5://" + addr, NoProxy: ","})
	remote := newTestClient(t, ClientOptions{Proxy: "socks5h://" + addr, NoProxy: ","})

	byName := "http://localhost:" + port + o.h.FilePath()
	if _, err := getAll(t, local, byName); err != nil {
		t.Fatal(err)
	}
	targets := px.Stats().Targets
	for _, target := range targets {
		if host, _, _ := net.SplitHostPort(target); net.ParseIP(host) == nil {
			t.Fatalf("socks5 asked the proxy for %q: want addresses resolved here", targets)
		}
	}
	if _, err := getAll(t, remote, byName); err != nil {
		t.Fatal(err)
	}
	if got := px.Stats().Targets[len(targets):]; len(got) != 1 || got[0] != "localhost:"+port {
		t.Fatalf("socks5h asked the proxy for %q, want localhost:%s", got, port)
	}
	targets = px.Stats().Targets

	onion := "http://origin.onion:" + port + o.h.FilePath()
	if body, err := getAll(t, remote, onion); err != nil || !bytes.Equal(body, o.h.Content()) {
		t.Fatalf("socks5h to a name only the proxy knows: %d bytes, error %v", len(body), err)
	}
	_, err = getAll(t, local, onion)
	var pxe *ProxyError
	if err == nil || errors.As(err, &pxe) || !strings.Contains(err.Error(), "origin.onion") {
		t.Fatalf("socks5 to a name only the proxy knows: error %v, want a failed lookup here", err)
	}
	if got := px.Stats().Targets[len(targets):]; len(got) != 1 {
		t.Errorf("the proxy was asked for %q after socks5h and socks5 to origin.onion: socks5 must not send the name", got)
	}
}

// NoProxy, or NO_PROXY without it, sends a matching host around the proxy;
// NoProxy "," overrides NO_PROXY with an empty list.
func TestClientNoProxy(t *testing.T) {
	o := newOrigin(t, false)
	tests := []struct {
		name, noProxy, env string
		proxied            bool
	}{
		{"no-list", "", "", true},
		{"option", "127.0.0.1", "", false},
		{"option-cidr", "10.0.0.0/8,127.0.0.0/8", "", false},
		{"option-other-host", "example.com", "", true},
		{"star", "*", "", false},
		{"env", "", "127.0.0.1", false},
		{"option-overrides-env", "example.com", "127.0.0.1", true},
		{"empty-option-overrides-env", ",", "127.0.0.1", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("NO_PROXY", tt.env)
			t.Setenv("no_proxy", "")
			for _, kind := range []func(testing.TB, ...testproxy.Option) *testproxy.Proxy{testproxy.NewHTTP, testproxy.NewSOCKS5} {
				px := kind(t)
				c := newTestClient(t, ClientOptions{Proxy: px.URL, NoProxy: tt.noProxy})
				if _, err := getAll(t, c, o.url); err != nil {
					t.Fatal(err)
				}
				if got := px.Stats().Conns > 0; got != tt.proxied {
					t.Errorf("%s: proxied %v, want %v", px.URL, got, tt.proxied)
				}
			}
		})
	}
}

// Without Proxy the environment's variables are read when the client is
// made: HTTP_PROXY for http, HTTPS_PROXY for https, never for loopback
// addresses, NO_PROXY or else NoProxy for exceptions.
func TestClientProxyFromEnvironment(t *testing.T) {
	plain := newOrigin(t, false)
	secure := newOrigin(t, true)
	forHTTP := testproxy.NewHTTP(t, testproxy.Host("origin.onion", "127.0.0.1"))
	forHTTPS := testproxy.NewHTTP(t, testproxy.Host("origin.onion", "127.0.0.1"))
	for _, v := range []string{"http_proxy", "https_proxy", "no_proxy", "REQUEST_METHOD"} {
		t.Setenv(v, "")
	}
	t.Setenv("HTTP_PROXY", forHTTP.URL)
	t.Setenv("HTTPS_PROXY", forHTTPS.URL)
	t.Setenv("NO_PROXY", "")
	onion := func(o origin) string { return strings.Replace(o.url, "127.0.0.1", "origin.onion", 1) }

	c := newTestClient(t, ClientOptions{Insecure: true})
	for _, u := range []string{onion(plain), onion(secure)} {
		if _, err := getAll(t, c, u); err != nil {
			t.Fatal(err)
		}
	}
	if s := forHTTP.Stats(); s.Forwarded != 1 || s.Tunnels != 0 {
		t.Errorf("HTTP_PROXY: %+v, want the http request forwarded", s)
	}
	if s := forHTTPS.Stats(); s.Tunnels != 1 || s.Forwarded != 0 {
		t.Errorf("HTTPS_PROXY: %+v, want the https request tunnelled", s)
	}
	// Loopback addresses go direct, as with Go's net/http.
	if _, err := getAll(t, c, plain.url); err != nil {
		t.Fatal(err)
	}
	if n := forHTTP.Stats().Forwarded; n != 1 {
		t.Errorf("a loopback request went through HTTP_PROXY (%d forwarded)", n)
	}

	// NO_PROXY sends the name around the proxy: no one here resolves it.
	t.Setenv("NO_PROXY", "onion")
	c = newTestClient(t, ClientOptions{})
	if _, err := getAll(t, c, onion(plain)); err == nil || !strings.Contains(err.Error(), "origin.onion") {
		t.Errorf("with NO_PROXY: error %v, want a failed lookup", err)
	}
	// NoProxy replaces NO_PROXY.
	c = newTestClient(t, ClientOptions{NoProxy: "example.com"})
	if _, err := getAll(t, c, onion(plain)); err != nil {
		t.Errorf("NoProxy in place of NO_PROXY: %v", err)
	}
	if n := forHTTP.Stats().Forwarded; n != 2 {
		t.Errorf("HTTP_PROXY forwarded %d requests, want 2", n)
	}

	// A broken variable fails the requests it would carry, its password
	// redacted, rather than letting them go around it.
	t.Setenv("NO_PROXY", "")
	t.Setenv("HTTP_PROXY", "http://u:hunter2@bad host")
	c = newTestClient(t, ClientOptions{})
	_, err := getAll(t, c, onion(plain))
	if err == nil || !IsPermanent(err) || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "HTTP_PROXY") {
		t.Errorf("broken HTTP_PROXY: error %v, want a permanent one naming the variable, without the password", err)
	}
}

// A proxy that cannot be reached, refuses the credentials or is no proxy
// at all fails the request with an error naming it, its password
// redacted, and nothing goes around it to the server.
func TestClientProxyErrors(t *testing.T) {
	o := newOrigin(t, false)
	tlsOrigin := newOrigin(t, true)
	dead := testproxy.NewHTTP(t)
	dead.Stop()
	deadSOCKS := testproxy.NewSOCKS5(t)
	deadSOCKS.Stop()
	strict := testproxy.NewHTTP(t, testproxy.Credentials("alice", "right"))
	strictSOCKS := testproxy.NewSOCKS5(t, testproxy.Credentials("alice", "right"))
	with := func(px *testproxy.Proxy, userinfo string) string {
		scheme, addr, _ := strings.Cut(px.URL, "://")
		return scheme + "://" + userinfo + "@" + addr
	}
	tests := []struct {
		name      string
		proxy     string
		url       string
		says      string
		permanent bool
	}{
		{"refused/http", with(dead, "u:hunter2"), o.url, "proxy http://REDACTED@" + dead.Addr() + ": ", false},
		{"refused/https", with(dead, "u:hunter2"), tlsOrigin.url, "proxy http://REDACTED@" + dead.Addr() + ": ", false},
		{"refused/socks5", with(deadSOCKS, "u:hunter2"), o.url, "proxy socks5://REDACTED@" + deadSOCKS.Addr() + ": ", false},
		{"wrong-password/forward", with(strict, "alice:hunter2"), o.url, "407 Proxy Authentication Required", true},
		{"wrong-password/connect", with(strict, "alice:hunter2"), tlsOrigin.url, "proxy http://REDACTED@" + strict.Addr() + " refused to open a tunnel: 407 Proxy Authentication Required", true},
		{"wrong-password/socks5", with(strictSOCKS, "alice:hunter2"), o.url, "proxy socks5://REDACTED@" + strictSOCKS.Addr() + ": ", true},
		{"no-password/socks5", strictSOCKS.URL, o.url, "proxy socks5://" + strictSOCKS.Addr() + ": ", true},
		{"not-a-proxy", "ftp://u:hunter2@127.0.0.1:21", o.url, "the scheme is http, https, socks5 or socks5h", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := o.h.Stats().Requests + tlsOrigin.h.Stats().Requests
			c := newTestClient(t, ClientOptions{Proxy: tt.proxy, NoProxy: ",", RootCAs: tlsOrigin.pool})
			_, err := getAll(t, c, tt.url)
			t.Log(err)
			switch {
			case err == nil:
				t.Fatal("no error")
			case !strings.Contains(err.Error(), tt.says):
				t.Errorf("error %q does not say %q", err, tt.says)
			case strings.Contains(err.Error(), "hunter2"):
				t.Errorf("error %q shows the password", err)
			case IsPermanent(err) != tt.permanent:
				t.Errorf("error %q: permanent %v, want %v", err, IsPermanent(err), tt.permanent)
			}
			// What failed to connect is the proxy's address, for whoever
			// looks for one in the error.
			var op *net.OpError
			if strings.HasPrefix(tt.name, "refused/") && (!errors.As(err, &op) || op.Op != "proxyconnect" || op.Addr == nil || !strings.HasSuffix(tt.proxy, "@"+op.Addr.String())) {
				t.Errorf("error %q: the first net.OpError is %+v, want proxyconnect with the proxy's address", err, op)
			}
			if after := o.h.Stats().Requests + tlsOrigin.h.Stats().Requests; after != before {
				t.Errorf("the request reached the server around the proxy")
			}
		})
	}
	if strict.Stats().Refused != 2 || strictSOCKS.Stats().Refused == 0 {
		t.Errorf("the proxies refused %d and %d clients; the wrong passwords did not reach them", strict.Stats().Refused, strictSOCKS.Stats().Refused)
	}
}
