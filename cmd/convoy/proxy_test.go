package main

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/convoy-dl/convoy"
	"github.com/convoy-dl/convoy/internal/testproxy"
	"github.com/convoy-dl/convoy/internal/testserver"
)

// TestProxyOptionChecks checks that a --proxy convoy cannot use is a usage
// error naming the option and the fault, its password redacted, and that a
// proxy without a scheme is taken as http.
func TestProxyOptionChecks(t *testing.T) {
	srv := testserver.New(t, testserver.Size(64<<10))
	px := testproxy.NewHTTP(t)
	dir := t.TempDir()
	get := func(proxy string) []string {
		return []string{"get", "-q", "--overwrite", "-d", dir, "-o", "f.bin", "--proxy", proxy, srv.URL}
	}
	tests := []struct {
		name  string
		proxy string
		says  string // "" for a download that succeeds
	}{
		{"ftp", "ftp://u:hunter2@127.0.0.1:21", "--proxy: ftp://REDACTED@127.0.0.1:21 is not a proxy URL convoy can use: the scheme is http, https, socks5 or socks5h"},
		{"socks4", "socks4://127.0.0.1:1080", "the scheme is http, https, socks5 or socks5h"},
		{"no-host", "http://:3128", "--proxy: proxy http://:3128 has no host"},
		{"port-too-high", "u:hunter2@127.0.0.1:99999", "--proxy: proxy http://REDACTED@127.0.0.1:99999 has port 99999; a port is a number from 1 to 65535"},
		{"port-not-a-number", "http://127.0.0.1:squid", `--proxy: "http://127.0.0.1:squid" is not a proxy URL: invalid port ":squid"`},
		{"no-scheme", px.Addr(), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := checkExit(t, get(tt.proxy), tt.says)
			if strings.Contains(out, "hunter2") {
				t.Errorf("a secret in the output: %s", out)
			}
		})
	}
	if n := srv.Stats().Requests; n != px.Stats().Forwarded || n == 0 {
		t.Errorf("the server answered %d requests, the proxy forwarded %d; want all through it", n, px.Stats().Forwarded)
	}
	srv.Verify(t, filepath.Join(dir, "f.bin"))
}

// TestProxyOnTheCommandLine downloads through an HTTP proxy and a SOCKS5
// one (socks5h, to https with --ca-cert), each checking credentials, and
// around them with --noproxy.
func TestProxyOnTheCommandLine(t *testing.T) {
	plain := testserver.New(t, testserver.Size(1<<20+3))
	h := testserver.NewHandler(testserver.Size(1<<20 + 5))
	ts := httptest.NewTLSServer(h)
	t.Cleanup(func() { h.Close(); ts.Close() })
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	web := testproxy.NewHTTP(t, testproxy.Credentials("alice", "hunter2"))
	socks := testproxy.NewSOCKS5(t, testproxy.Credentials("bob", "hunter3"))

	if code, out := runCLI(t, "get", "-q", "-d", dir, "-o", "a.bin", "--proxy", "http://alice:hunter2@"+web.Addr(), plain.URL); code != exitOK {
		t.Fatalf("http proxy: exit %d, %s", code, out)
	}
	plain.Verify(t, filepath.Join(dir, "a.bin"))
	if s := web.Stats(); s.Forwarded == 0 || s.Bytes < plain.Size() || s.Refused != 0 {
		t.Errorf("http proxy stats %+v", s)
	}

	url := ts.URL + h.FilePath()
	if code, out := runCLI(t, "get", "-q", "-d", dir, "-o", "b.bin", "--ca-cert", ca, "--proxy", "socks5h://bob:hunter3@"+socks.Addr(), url); code != exitOK {
		t.Fatalf("socks5h proxy: exit %d, %s", code, out)
	}
	h.Verify(t, filepath.Join(dir, "b.bin"))
	if s := socks.Stats(); s.Tunnels == 0 || s.Bytes < h.Size() || s.Refused != 0 {
		t.Errorf("socks proxy stats %+v", s)
	}

	before := socks.Stats().Conns
	if code, out := runCLI(t, "get", "-q", "-d", dir, "-o", "c.bin", "--ca-cert", ca, "--proxy", "socks5://bob:hunter3@"+socks.Addr(), "--noproxy", "example.com,127.0.0.1", url); code != exitOK {
		t.Fatalf("--noproxy: exit %d, %s", code, out)
	}
	h.Verify(t, filepath.Join(dir, "c.bin"))
	if after := socks.Stats().Conns; after != before {
		t.Errorf("--noproxy 127.0.0.1: the proxy took %d connections", after-before)
	}
}

// TestProxySecretsNeverPrinted checks that a proxy's password appears in
// no notice, no --json event and no error, and that a proxy that refuses
// the first connection, or the credentials, fails the download with a
// message naming the proxy.
func TestProxySecretsNeverPrinted(t *testing.T) {
	srv := testserver.New(t, testserver.Size(2<<20), testserver.Statuses(0, 500))
	web := testproxy.NewHTTP(t, testproxy.Credentials("alice", "hunter2"))
	dead := testproxy.NewSOCKS5(t)
	dead.Stop()
	dir := t.TempDir()
	tests := []struct {
		name  string
		proxy string
		code  int
		says  string
	}{
		{"retries", "http://alice:hunter2@" + web.Addr(), exitOK, ""},
		{"refused", "socks5h://alice:hunter2@" + dead.Addr(), exitNetwork, dead.Addr()},
		{"wrong-password", "http://alice:hunter22@" + web.Addr(), exitHTTP, "407 Proxy Authentication Required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run([]string{"convoy", "get", "--json", "--max-tries", "3", "-n", "2", "-d", dir, "-o", tt.name + ".bin", "--proxy", tt.proxy, srv.URL}, &stdout, &stderr)
			if code != tt.code {
				t.Fatalf("exit %d, want %d: %s", code, tt.code, stderr.String())
			}
			if out := stdout.String() + stderr.String(); strings.Contains(out, "hunter2") {
				t.Errorf("the password shows:\n%s", out)
			}
			var last convoy.Event
			lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
			if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
				t.Fatal(err)
			}
			if tt.code == exitOK {
				if !strings.Contains(stdout.String(), `"event":"retry"`) || last.Type != "done" {
					t.Errorf("events lack a retry or end with %q:\n%s", last.Type, stdout.String())
				}
				srv.Verify(t, filepath.Join(dir, tt.name+".bin"))
				return
			}
			says := []string{tt.says}
			if tt.name == "refused" {
				says = append(says, "proxy", "connection refused")
			}
			for _, want := range says {
				if last.Type != "error" || !strings.Contains(last.Error, want) {
					t.Errorf("last event %+v, want an error saying %q", last, want)
				}
				if !strings.Contains(stderr.String(), "convoy: ") || !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr does not say %q:\n%s", want, stderr.String())
				}
			}
		})
	}
	if web.Stats().Refused == 0 {
		t.Error("the wrong password never reached the proxy")
	}
}

// TestProxyEnvironmentAndOptions runs the binary with HTTP_PROXY, HTTPS_PROXY
// and NO_PROXY set, as a user's shell would: each is honoured, --noproxy
// replaces NO_PROXY, --proxy replaces the proxies and --proxy ” turns
// them off. The server's name, origin.onion, is one only the proxies
// resolve (Go never asks DNS for .onion names), since the environment's
// proxies do not carry requests to loopback addresses.
func TestProxyEnvironmentAndOptions(t *testing.T) {
	bin := buildBinary(t)
	plain := testserver.New(t, testserver.Size(256<<10))
	h := testserver.NewHandler(testserver.Size(300 << 10))
	ts := httptest.NewTLSServer(h)
	t.Cleanup(func() { h.Close(); ts.Close() })
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	forHTTP := testproxy.NewHTTP(t, testproxy.Host("origin.onion", "127.0.0.1"))
	forHTTPS := testproxy.NewHTTP(t, testproxy.Host("origin.example.com", "127.0.0.1"))
	other := testproxy.NewSOCKS5(t, testproxy.Host("origin.onion", "127.0.0.1"))
	dead := testproxy.NewHTTP(t)
	dead.Stop()
	plainURL := strings.Replace(plain.URL, "127.0.0.1", "origin.onion", 1)
	// The certificate is good for *.example.com.
	secureURL := strings.Replace(ts.URL, "127.0.0.1", "origin.example.com", 1) + h.FilePath()

	var base []string
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); !strings.HasSuffix(strings.ToLower(name), "_proxy") && name != "GODEBUG" {
			base = append(base, kv)
		}
	}
	base = append(base, "GODEBUG=netdns=go", "HTTP_PROXY="+forHTTP.URL, "HTTPS_PROXY="+forHTTPS.URL)
	convoyGet := func(env []string, args ...string) (int, string) {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"get", "-q", "--max-tries", "2", "-d", dir}, args...)...)
		cmd.Env = append(append([]string{}, base...), env...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		switch {
		case err == nil:
			return 0, string(out)
		case errors.As(err, &ee):
			return ee.ExitCode(), string(out)
		}
		t.Fatalf("%v: %s", err, out)
		return 0, ""
	}

	if code, out := convoyGet(nil, "-o", "http.bin", plainURL); code != exitOK {
		t.Fatalf("HTTP_PROXY: exit %d, %s", code, out)
	}
	plain.Verify(t, filepath.Join(dir, "http.bin"))
	if code, out := convoyGet(nil, "-o", "https.bin", "--ca-cert", ca, secureURL); code != exitOK {
		t.Fatalf("HTTPS_PROXY: exit %d, %s", code, out)
	}
	h.Verify(t, filepath.Join(dir, "https.bin"))
	if s := forHTTP.Stats(); s.Forwarded == 0 || s.Tunnels != 0 {
		t.Errorf("HTTP_PROXY stats %+v: want the http requests forwarded, nothing else", s)
	}
	if s := forHTTPS.Stats(); s.Tunnels == 0 || s.Forwarded != 0 {
		t.Errorf("HTTPS_PROXY stats %+v: want the https requests tunnelled, nothing else", s)
	}

	forwarded := forHTTP.Stats().Forwarded
	code, out := convoyGet([]string{"NO_PROXY=example.org,.onion"}, "-o", "bypass.bin", plainURL)
	if code != exitNetwork || !strings.Contains(out, "origin.onion") || forHTTP.Stats().Forwarded != forwarded {
		t.Errorf("NO_PROXY: exit %d, %q, %d requests forwarded: want a direct connection, failing to find origin.onion",
			code, out, forHTTP.Stats().Forwarded-forwarded)
	}
	if code, out := convoyGet([]string{"no_proxy=.onion"}, "-o", "override.bin", "--noproxy", "example.org", plainURL); code != exitOK {
		t.Errorf("--noproxy over no_proxy: exit %d, %s", code, out)
	}
	if code, out := convoyGet([]string{"NO_PROXY=.onion"}, "-o", "empty.bin", "--noproxy", "", plainURL); code != exitOK {
		t.Errorf("--noproxy '' over NO_PROXY: exit %d, %s", code, out)
	}
	if code, out := convoyGet([]string{"HTTP_PROXY=" + dead.URL}, "-o", "given.bin", "--proxy", "socks5h://"+other.Addr(), plainURL); code != exitOK || other.Stats().Tunnels == 0 {
		t.Errorf("--proxy over HTTP_PROXY: exit %d, %s", code, out)
	}
	forwarded = forHTTP.Stats().Forwarded
	if code, out := convoyGet(nil, "-o", "none.bin", "--proxy", "", plainURL); code != exitNetwork || forHTTP.Stats().Forwarded != forwarded {
		t.Errorf("--proxy '': exit %d, %s: want a direct connection, failing", code, out)
	}
	for _, name := range []string{"override.bin", "empty.bin", "given.bin"} {
		plain.Verify(t, filepath.Join(dir, name))
	}
}
