package segment

import (
	"bytes"
	"compress/gzip"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The segment client speaks HTTP/1.1 even to a server that offers HTTP/2,
// so that every connection is its own TCP connection.
func TestNewClientHTTP1Only(t *testing.T) {
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.Proto)
	}))
	ts.EnableHTTP2 = true
	ts.StartTLS()
	t.Cleanup(ts.Close)

	get := func(c *http.Client) (int, string) {
		t.Helper()
		resp, err := c.Get(ts.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.ProtoMajor, string(body)
	}
	// The server does speak HTTP/2 to a client that offers it.
	std := ts.Client()
	t.Cleanup(std.CloseIdleConnections)
	if major, _ := get(std); major != 2 {
		t.Fatalf("the test server answered HTTP/%d to an HTTP/2 client; the test proves nothing", major)
	}
	c := newTestClient(t, ClientOptions{Insecure: true, Connections: 4})
	if major, proto := get(c); major != 1 || proto != "HTTP/1.1" {
		t.Fatalf("segment client spoke HTTP/%d (server saw %s), want HTTP/1.1", major, proto)
	}
}

// The client adds no Accept-Encoding and does not decode a compressed body:
// a transparently gunzipped body would break range arithmetic.
func TestNewClientNoCompression(t *testing.T) {
	var zipped bytes.Buffer
	gz := gzip.NewWriter(&zipped)
	gz.Write([]byte("plain text, compressed"))
	gz.Close()
	var (
		mu  sync.Mutex
		got []string
	)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("Accept-Encoding"))
		mu.Unlock()
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(zipped.Bytes())
	}))
	t.Cleanup(ts.Close)

	fetch := func(c *http.Client) (*http.Response, []byte) {
		t.Helper()
		resp, err := c.Get(ts.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}
	// A default transport would ask for gzip and decode it.
	std := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(std.CloseIdleConnections)
	if resp, _ := fetch(std); !resp.Uncompressed {
		t.Fatal("a default transport did not decode gzip; the test proves nothing")
	}

	c := newTestClient(t, ClientOptions{})
	resp, body := fetch(c)
	if resp.Uncompressed || resp.Header.Get("Content-Encoding") != "gzip" || !bytes.Equal(body, zipped.Bytes()) {
		t.Errorf("segment client decoded the body (Uncompressed %v, Content-Encoding %q, %d bytes)",
			resp.Uncompressed, resp.Header.Get("Content-Encoding"), len(body))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0] != "gzip" || got[1] != "" {
		t.Errorf("Accept-Encoding sent: %q, want gzip from the default client and nothing from ours", got)
	}
}

// The transport keeps an idle connection for each of the parallel
// connections, so a second round of requests opens no new ones.
func TestNewClientKeepsConnectionsPerHost(t *testing.T) {
	const conns = 8
	var (
		newConns atomic.Int32
		mu       sync.Mutex
		inFlight int
		all      = make(chan struct{})
		allOnce  sync.Once
	)
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Hold each answer until all conns requests of the round are in
		// flight, so the client must use conns connections at once.
		mu.Lock()
		inFlight++
		if inFlight == conns {
			allOnce.Do(func() { close(all) })
		}
		mu.Unlock()
		select {
		case <-all:
		case <-time.After(5 * time.Second):
		}
		fmt.Fprint(w, "ok")
	}))
	ts.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			newConns.Add(1)
		}
	}
	ts.Start()
	t.Cleanup(ts.Close)

	c := newTestClient(t, ClientOptions{Connections: conns})
	for round := range 3 {
		var wg sync.WaitGroup
		errs := make(chan error, conns)
		for range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := c.Get(ts.URL)
				if err != nil {
					errs <- err
					return
				}
				defer resp.Body.Close()
				if _, err := io.Copy(io.Discard, resp.Body); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: %v", round, err)
		}
	}
	if n := newConns.Load(); n != conns {
		t.Errorf("%d TCP connections for 3 rounds of %d parallel requests, want %d", n, conns, conns)
	}
}

func TestNewClientRootCAs(t *testing.T) {
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "ok")
	}))
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	ts.StartTLS()
	t.Cleanup(ts.Close)
	pool := x509.NewCertPool()
	pool.AddCert(ts.Certificate())
	tests := []struct {
		name string
		o    ClientOptions
		ok   bool
	}{
		{"system roots", ClientOptions{}, false},
		{"given roots", ClientOptions{RootCAs: pool}, true},
		{"insecure", ClientOptions{Insecure: true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestClient(t, tt.o)
			resp, err := c.Get(ts.URL)
			if err == nil {
				resp.Body.Close()
			}
			if (err == nil) != tt.ok {
				t.Fatalf("Get = %v, want ok %v", err, tt.ok)
			}
			if err != nil && !IsPermanent(err) {
				t.Errorf("certificate error %v is not permanent", err)
			}
		})
	}
}

func TestCheckRedirect(t *testing.T) {
	u := func(s string) *http.Request {
		p, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return &http.Request{URL: p}
	}
	chain := func(n int) []*http.Request {
		var via []*http.Request
		for i := range n {
			via = append(via, u(fmt.Sprintf("http://h/r/%d", i)))
		}
		return via
	}
	tests := []struct {
		name  string
		allow bool
		to    string
		via   []*http.Request
		ok    bool
	}{
		{"http to http", false, "http://b/x", chain(1), true},
		{"http to https", false, "https://b/x", chain(1), true},
		{"https to https", false, "https://b/x", []*http.Request{u("https://a/")}, true},
		{"https to http", false, "http://b/x", []*http.Request{u("https://a/")}, false},
		{"https to http allowed", true, "http://b/x", []*http.Request{u("https://a/")}, true},
		{"http, https, then http", false, "http://c/x", []*http.Request{u("http://a/"), u("https://b/")}, false},
		{"https, http allowed, then http", true, "http://c/x", []*http.Request{u("https://a/"), u("http://b/")}, true},
		{"ftp", false, "ftp://b/x", chain(1), false},
		{"file", true, "file:///etc/passwd", chain(1), false},
		{"no scheme", false, "//b/x", chain(1), false},
		{"last allowed hop", false, "http://b/x", chain(MaxRedirects - 1), true},
		{"one hop too many", false, "http://b/x", chain(MaxRedirects), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkRedirect(tt.allow)(u(tt.to), tt.via)
			if (err == nil) != tt.ok {
				t.Fatalf("checkRedirect = %v, want ok %v", err, tt.ok)
			}
			if err != nil {
				if _, isRedirect := err.(*RedirectError); !isRedirect {
					t.Errorf("error %T, want *RedirectError", err)
				}
			}
		})
	}
}

// A refused redirect's message does not carry the secrets of the target.
func TestCheckRedirectRedacts(t *testing.T) {
	p, err := url.Parse("ftp://user:hunter2@b/x?token=hunter2")
	if err != nil {
		t.Fatal(err)
	}
	err = checkRedirect(false)(&http.Request{URL: p}, []*http.Request{{URL: &url.URL{Scheme: "http", Host: "a"}}})
	if err == nil || bytes.Contains([]byte(err.Error()), []byte("hunter2")) {
		t.Fatalf("checkRedirect = %v, want a redacted refusal", err)
	}
}

// Credentials the user addressed to one host go to that host and its
// subdomains only; every header that carries none goes everywhere. Hosts are
// compared as net/http compares them on a redirect: without the port,
// without regard to case, and an address (IPv4, IPv6, an IPv6 literal with
// a zone) has no subdomains.
func TestHeadersForScopesCredentials(t *testing.T) {
	tests := []struct {
		name     string
		from, to string
		send     bool // the credentials go along
	}{
		{"same host", "https://example.com/a", "https://example.com/b", true},
		{"same host, http to https", "http://example.com/a", "https://example.com/b", true},
		{"subdomain", "https://example.com/a", "https://cdn.example.com/b", true},
		{"deeper subdomain", "https://example.com/a", "https://eu.cdn.example.com/b", true},
		{"parent of the host", "https://cdn.example.com/a", "https://example.com/b", false},
		{"sibling", "https://a.example.com/x", "https://b.example.com/x", false},
		{"lookalike suffix", "https://example.com/a", "https://evilexample.com/b", false},
		{"lookalike subdomain of a lookalike", "https://example.com/a", "https://cdn.evilexample.com/b", false},
		{"host as a prefix", "https://example.com/a", "https://example.com.evil.net/b", false},
		{"shorter name", "https://example.com/a", "https://ample.com/b", false},
		{"other port", "https://example.com/a", "https://example.com:8443/b", true},
		{"subdomain on another port", "https://example.com:8443/a", "https://cdn.example.com/b", true},
		{"uppercase target", "https://example.com/a", "https://CDN.Example.COM/b", true},
		{"uppercase origin", "https://EXAMPLE.COM/a", "https://cdn.example.com/b", true},
		{"uppercase lookalike", "https://example.com/a", "https://EVILEXAMPLE.COM/b", false},
		{"IDN in other case", "https://BÜCHER.example/a", "https://dl.bücher.example/b", true},
		{"IDN lookalike (Cyrillic e)", "https://example.com/a", "https://\u0435xample.com/b", false},
		{"IDN lookalike suffix", "https://bücher.example/a", "https://evilbücher.example/b", false},
		{"same IPv4", "http://127.0.0.1:8080/a", "http://127.0.0.1:9090/b", true},
		{"IPv4 to a name", "http://127.0.0.1/a", "http://localhost/b", false},
		{"name to IPv4", "http://localhost/a", "http://127.0.0.1/b", false},
		{"IPv4 with a longer last part", "http://10.0.0.1/a", "http://10.0.0.10/b", false},
		{"IPv4 as if it had subdomains", "http://1.2.3.4/a", "http://5.1.2.3.4/b", false},
		{"same IPv6", "http://[::1]:8080/a", "http://[::1]:9090/b", true},
		{"other IPv6", "http://[::1]/a", "http://[::2]/b", false},
		{"IPv6 zone ending in the name", "https://example.com/a", "http://[fe80::1%25.example.com]/b", false},
		{"trailing dots, subdomain", "https://example.com./a", "https://cdn.example.com./b", true},
		{"trailing dots, lookalike", "https://example.com./a", "https://evilexample.com./b", false},
		// The same name spelt another way: withheld, as net/http withholds it
		// on a redirect; the server then answers 401, nothing leaks.
		{"trailing dot added", "https://example.com/a", "https://example.com./b", false},
	}
	h := http.Header{
		"Authorization": {"Bearer s3cret"},
		"Cookie":        {"session=c00kie"},
		"X-Api-Key":     {"k3y"},
		"User-Agent":    {"convoy/test"},
		"Range":         {"bytes=0-9"},
	}
	credentials := []string{"Authorization", "Cookie", "X-Api-Key"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			from, err := url.Parse(tt.from)
			if err != nil {
				t.Fatal(err)
			}
			to, err := url.Parse(tt.to)
			if err != nil {
				t.Fatal(err)
			}
			got := HeadersFor(h, from, to)
			for _, k := range credentials {
				if sent := got.Get(k) != ""; sent != tt.send {
					t.Errorf("%s to %s after addressing %s: sent %v, want %v", k, to.Host, from.Host, sent, tt.send)
				}
			}
			if got.Get("User-Agent") != "convoy/test" || got.Get("Range") != "bytes=0-9" {
				t.Errorf("headers without credentials were dropped: %v", got)
			}
		})
	}
	if got := HeadersFor(h, nil, nil); got.Get("Authorization") != "" || got.Get("User-Agent") == "" {
		t.Errorf("without addresses to compare: %v, want only the headers without credentials", got)
	}
	if h.Get("Authorization") == "" || len(h) != 5 {
		t.Errorf("HeadersFor modified its argument: %v", h)
	}
}
