package convoy_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/convoy-dl/convoy"
	"github.com/convoy-dl/convoy/internal/testproxy"
	"github.com/convoy-dl/convoy/internal/testserver"
)

// proxyKind is a proxy and the scheme a client names it with.
type proxyKind struct {
	name   string
	start  func(testing.TB, ...testproxy.Option) *testproxy.Proxy
	scheme string
	tls    bool // the file is served over https (a CONNECT tunnel or SOCKS)
}

var proxyKinds = []proxyKind{
	{"http-forward", testproxy.NewHTTP, "http", false},
	{"http-connect", testproxy.NewHTTP, "http", true},
	{"socks5", testproxy.NewSOCKS5, "socks5", false},
	{"socks5-tls", testproxy.NewSOCKS5, "socks5", true},
	{"socks5h", testproxy.NewSOCKS5, "socks5h", true},
}

// proxyURL names px with scheme and, unless empty, userinfo.
func proxyURL(px *testproxy.Proxy, scheme, userinfo string) string {
	if userinfo != "" {
		userinfo += "@"
	}
	return scheme + "://" + userinfo + px.Addr()
}

// fileServer serves a file of size bytes at rate bytes per second a
// connection (0: unlimited), over TLS when tls is set; it returns the
// handler, the file's URL and roots that trust it.
func fileServer(t *testing.T, size, rate int64, tls bool) (*testserver.Handler, string, *x509.CertPool) {
	t.Helper()
	h := testserver.NewHandler(testserver.Size(size), testserver.Rate(rate))
	ts := httptest.NewUnstartedServer(h)
	pool := x509.NewCertPool()
	if tls {
		ts.StartTLS()
		pool.AddCert(ts.Certificate())
	} else {
		ts.Start()
	}
	t.Cleanup(func() { h.Close(); ts.Close() })
	return h, ts.URL + h.FilePath(), pool
}

// A download through each kind of proxy, with credentials the proxy
// checks, is byte-identical, and every byte went through the proxy.
func TestDownloadThroughProxy(t *testing.T) {
	const size = 3<<20 + 17
	for _, k := range proxyKinds {
		t.Run(k.name, func(t *testing.T) {
			h, url, pool := fileServer(t, size, 0, k.tls)
			px := k.start(t, testproxy.Credentials("alice", "hunter2"))
			dir := t.TempDir()
			cfg := fastConfig(url, dir)
			cfg.Proxy, cfg.NoProxy, cfg.RootCAs = proxyURL(px, k.scheme, "alice:hunter2"), ",", pool
			res, err := convoy.Download(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			h.Verify(t, filepath.Join(dir, "out.bin"))
			s := px.Stats()
			if s.Conns == 0 || s.Bytes < size || s.Refused != 0 {
				t.Errorf("proxy stats %+v: want the %d bytes through it, none refused", s, size)
			}
			// Every request the server saw came through the proxy.
			if sent := h.Stats().Requests; k.scheme == "http" && !k.tls && s.Forwarded != sent {
				t.Errorf("the proxy forwarded %d requests, the server answered %d", s.Forwarded, sent)
			}
			if res.Resumed != 0 || res.Fetched != size {
				t.Errorf("result %+v", res)
			}
		})
	}
}

// A proxy that dies mid-download, or stops and refuses connections until
// it is back, costs retries, never a corrupt file: once it is back the
// download completes byte-identical, through it.
func TestProxyDiesMidDownload(t *testing.T) {
	const size = 4 << 20
	for _, k := range proxyKinds {
		for _, mode := range []string{"killed", "refusing"} {
			t.Run(k.name+"/"+mode, func(t *testing.T) {
				h, url, pool := fileServer(t, size, 2<<20, k.tls)
				px := k.start(t)
				dir := t.TempDir()
				cfg := fastConfig(url, dir)
				cfg.Proxy, cfg.NoProxy, cfg.RootCAs = proxyURL(px, k.scheme, ""), ",", pool
				cfg.ProgressInterval = 5 * time.Millisecond
				var (
					mu              sync.Mutex
					died, restarted bool
					connsAtDeath    int
					refusals        int
				)
				cfg.OnProgress = func(p convoy.Progress) {
					mu.Lock()
					defer mu.Unlock()
					if died || p.Done < size/3 {
						return
					}
					died, connsAtDeath = true, px.Stats().Conns
					if mode == "killed" {
						px.Kill()
					} else {
						px.Stop()
					}
				}
				cfg.OnEvent = func(e convoy.Event) {
					mu.Lock()
					defer mu.Unlock()
					if e.Type != "retry" || !died || !strings.Contains(e.Error, "connection refused") {
						return
					}
					refusals++
					if mode == "refusing" && !restarted {
						restarted = true
						if err := px.Start(); err != nil {
							t.Error(err)
						}
					}
				}
				res, err := convoy.Download(context.Background(), cfg)
				if err != nil {
					t.Fatal(err)
				}
				h.Verify(t, filepath.Join(dir, "out.bin"))
				onlyOutput(t, dir, "out.bin")
				mu.Lock()
				defer mu.Unlock()
				if !died {
					t.Fatal("the proxy never died; the test proves nothing")
				}
				if mode == "refusing" && (!restarted || refusals == 0) {
					t.Errorf("no connection was refused while the proxy was down")
				}
				if s := px.Stats(); res.Retries == 0 || s.Conns <= connsAtDeath {
					t.Errorf("%d retries, proxy connections %d after %d at its death: want retries through new connections", res.Retries, s.Conns, connsAtDeath)
				}
			})
		}
	}
}

// The proxy's credentials reach neither the manifest of an interrupted
// download, nor an event, nor a notice; the resumed download completes.
func TestProxyCredentialsNeverStored(t *testing.T) {
	const size = 2 << 20
	for _, k := range proxyKinds {
		t.Run(k.name, func(t *testing.T) {
			h, url, pool := fileServer(t, size, 1<<20, k.tls)
			px := k.start(t, testproxy.Credentials("alice", "hunter2"))
			dir := t.TempDir()
			cfg := fastConfig(url, dir)
			cfg.Proxy, cfg.NoProxy, cfg.RootCAs = proxyURL(px, k.scheme, "alice:hunter2"), ",", pool
			var (
				mu   sync.Mutex
				said []string
			)
			cfg.Logf = func(format string, args ...any) {
				mu.Lock()
				defer mu.Unlock()
				said = append(said, fmt.Sprintf(format, args...))
			}
			cfg.OnEvent = func(e convoy.Event) {
				mu.Lock()
				defer mu.Unlock()
				said = append(said, fmt.Sprintf("%+v", e))
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cfg.ProgressInterval = 10 * time.Millisecond
			cfg.OnProgress = func(p convoy.Progress) {
				if p.Done > size/2 {
					cancel()
					px.Kill() // retries, and their notices, on the way out
				}
			}
			if _, err := convoy.Download(ctx, cfg); !errors.Is(err, convoy.ErrInterrupted) {
				t.Fatalf("error %v, want ErrInterrupted", err)
			}
			data, err := os.ReadFile(filepath.Join(dir, "out.bin.convoy"))
			if err != nil {
				t.Fatal(err)
			}
			for _, secret := range []string{"hunter2", "alice", px.Addr()} {
				if strings.Contains(string(data), secret) {
					t.Errorf("the manifest holds %q:\n%s", secret, data)
				}
			}
			cfg.OnProgress = nil
			if _, err := convoy.Download(context.Background(), cfg); err != nil {
				t.Fatal(err)
			}
			h.Verify(t, filepath.Join(dir, "out.bin"))
			mu.Lock()
			defer mu.Unlock()
			for _, s := range said {
				if strings.Contains(s, "hunter2") {
					t.Errorf("said %q", s)
				}
			}
		})
	}
}

// A proxy URL convoy cannot use is a usage error, before any request.
func TestProxyUsage(t *testing.T) {
	h, url, _ := fileServer(t, 1000, 0, false)
	for _, p := range []string{"ftp://127.0.0.1:21", "socks4://127.0.0.1:1080", "http://:8080", "http://u:hunter2@127.0.0.1:0"} {
		cfg := fastConfig(url, t.TempDir())
		cfg.Proxy = p
		_, err := convoy.Download(context.Background(), cfg)
		if !errors.Is(err, convoy.ErrUsage) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("proxy %q: error %v, want a usage error without the password", p, err)
		}
	}
	if n := h.Stats().Requests; n != 0 {
		t.Errorf("%d requests reached the server", n)
	}
}
