// Package testproxy runs proxies on loopback for tests: an HTTP proxy that
// forwards absolute-URI requests and tunnels CONNECT, over plain TCP or TLS,
// and a SOCKS5 server (github.com/things-go/go-socks5). Each counts what it
// carried, can demand a user name and password, resolves names of its own,
// reaches loopback addresses only, and can be killed, or stopped and started
// again on the same address.
package testproxy

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"

	socks5 "github.com/things-go/go-socks5"
)

// Stats counts what a Proxy has done.
type Stats struct {
	Conns     int      // connections accepted from clients
	Tunnels   int      // connections opened to targets for CONNECT or SOCKS
	Forwarded int      // absolute-URI requests forwarded (HTTP proxy)
	Refused   int      // clients turned away for missing or wrong credentials
	Targets   []string // every target asked for, "host:port" as the client named it
	Bytes     int64    // bytes written to clients (counted as a write starts)
}

// Option configures a Proxy.
type Option func(*config)

type config struct {
	user, password string
	hosts          map[string]string
	tls            bool
}

// Credentials makes the proxy demand this user name and password:
// Proxy-Authorization Basic for the HTTP proxy, RFC 1929 for SOCKS5.
func Credentials(user, password string) Option {
	return func(c *config) { c.user, c.password = user, password }
}

// Host makes the proxy resolve name to ip (a loopback address); names it
// does not know, other than localhost, fail. A client resolves none of them.
func Host(name, ip string) Option {
	return func(c *config) { c.hosts[strings.ToLower(name)] = ip }
}

// TLS makes the HTTP proxy speak TLS to its clients (an https:// proxy),
// with httptest's certificate (see Proxy.Certificate).
func TLS() Option {
	return func(c *config) { c.tls = true }
}

// Proxy is a running proxy. Its methods are safe for concurrent use.
type Proxy struct {
	// URL is the proxy's address with its scheme (http, https or socks5)
	// and no credentials.
	URL string

	cfg   config
	l     *listener
	stats stats

	ts        *httptest.Server // the HTTP proxy's server
	forwarder *http.Transport  // the HTTP proxy's client for forwarded requests
	wg        sync.WaitGroup   // tunnels and SOCKS connections
	closeOnce sync.Once
}

type stats struct {
	mu sync.Mutex
	s  Stats
}

func (s *stats) add(f func(*Stats)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.s)
}

func newProxy(opts []Option) *Proxy {
	p := &Proxy{cfg: config{hosts: map[string]string{}}}
	for _, o := range opts {
		o(&p.cfg)
	}
	return p
}

// NewHTTP starts an HTTP proxy; t.Cleanup closes it.
func NewHTTP(t testing.TB, opts ...Option) *Proxy {
	t.Helper()
	p := newProxy(opts)
	p.forwarder = &http.Transport{DialContext: p.dial, DisableCompression: true, MaxIdleConnsPerHost: 64}
	p.ts = httptest.NewUnstartedServer(http.HandlerFunc(p.serveHTTP))
	p.ts.Config.ErrorLog = log.New(io.Discard, "", 0) // killed connections are the point
	p.l = newListener(p.ts.Listener, &p.stats)
	p.ts.Listener = p.l
	if p.cfg.tls {
		p.ts.StartTLS()
		p.URL = "https://" + p.l.Addr().String()
	} else {
		p.ts.Start()
		p.URL = "http://" + p.l.Addr().String()
	}
	t.Cleanup(p.Close)
	return p
}

// NewSOCKS5 starts a SOCKS5 server; t.Cleanup closes it. Clients choose
// socks5:// or socks5h:// in their URL for it; Stats.Targets shows which
// sent a name.
func NewSOCKS5(t testing.TB, opts ...Option) *Proxy {
	t.Helper()
	p := newProxy(opts)
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.l = newListener(inner, &p.stats)
	p.URL = "socks5://" + p.l.Addr().String()
	sopts := []socks5.Option{
		socks5.WithResolver(resolver{p}),
		socks5.WithDial(p.dialTunnel),
		socks5.WithRule(rule{p}),
	}
	if p.cfg.user != "" {
		sopts = append(sopts, socks5.WithCredential(credentials{p}))
	}
	srv := socks5.NewServer(sopts...)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := p.l.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				_ = srv.ServeConn(c) // a killed client is the point
			}()
		}
	}()
	t.Cleanup(p.Close)
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.l.Addr().String() }

// Certificate is the TLS proxy's certificate, for a client's trusted roots.
func (p *Proxy) Certificate() *x509.Certificate { return p.ts.Certificate() }

// Stats returns a copy of the counts so far.
func (p *Proxy) Stats() Stats {
	p.stats.mu.Lock()
	defer p.stats.mu.Unlock()
	s := p.stats.s
	s.Targets = append([]string(nil), s.Targets...)
	return s
}

// Kill closes every client connection, tunnels included, as a proxy that
// crashes and is restarted at once would; new connections are accepted.
func (p *Proxy) Kill() { p.l.killConns() }

// Stop closes the listening socket and every client connection: until
// Start, connecting to the proxy is refused.
func (p *Proxy) Stop() { p.l.stop() }

// Start listens again on the same address after Stop.
func (p *Proxy) Start() error { return p.l.start() }

// Close stops the proxy for good and waits for its goroutines.
func (p *Proxy) Close() {
	p.closeOnce.Do(func() {
		_ = p.l.Close() // nothing to do about a failed close of a test socket
		if p.ts != nil {
			p.ts.Close()
			p.forwarder.CloseIdleConnections()
		}
		p.wg.Wait()
	})
}

// dialTunnel is dial for a tunnel, counted.
func (p *Proxy) dialTunnel(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := p.dial(ctx, network, addr)
	if err == nil {
		p.stats.add(func(s *Stats) { s.Tunnels++ })
	}
	return c, err
}

// dial connects to addr, resolving names the proxy was given with Host,
// and only to loopback addresses.
func (p *Proxy) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	ip, err := p.resolve(host)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	return d.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
}

func (p *Proxy) resolve(host string) (netip.Addr, error) {
	name := strings.ToLower(host)
	if ip, ok := p.cfg.hosts[name]; ok {
		name = ip
	} else if name == "localhost" {
		name = "127.0.0.1"
	}
	a, err := netip.ParseAddr(name)
	if err != nil || !a.Unmap().IsLoopback() {
		return netip.Addr{}, fmt.Errorf("testproxy: %s is not a loopback address nor a name it knows", host)
	}
	return a.Unmap(), nil
}

func (p *Proxy) target(hostport string) {
	p.stats.add(func(s *Stats) { s.Targets = append(s.Targets, hostport) })
}

// authorized checks the HTTP proxy's credentials.
func (p *Proxy) authorized(r *http.Request) bool {
	if p.cfg.user == "" {
		return true
	}
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte(p.cfg.user+":"+p.cfg.password))
	return r.Header.Get("Proxy-Authorization") == want
}

func (p *Proxy) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if !p.authorized(r) {
		p.stats.add(func(s *Stats) { s.Refused++ })
		w.Header().Set("Proxy-Authenticate", `Basic realm="testproxy"`)
		http.Error(w, "proxy credentials wanted", http.StatusProxyAuthRequired)
		return
	}
	switch {
	case r.Method == http.MethodConnect:
		p.tunnel(w, r)
	case r.URL.IsAbs() && r.URL.Scheme == "http":
		p.forward(w, r)
	default:
		http.Error(w, "not a proxy request", http.StatusBadRequest)
	}
}

// tunnel answers CONNECT: a connection to the target, then bytes both ways
// until either side closes.
func (p *Proxy) tunnel(w http.ResponseWriter, r *http.Request) {
	p.target(r.Host)
	up, err := p.dialTunnel(r.Context(), "tcp", r.Host)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	// Counted before the hijack, while Close still waits for the request.
	p.wg.Add(1)
	defer p.wg.Done()
	client, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		_ = up.Close()
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if _, err := io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		_ = client.Close()
		_ = up.Close()
		return
	}
	pipe(client, buf.Reader, up)
}

// pipe copies between client (whose reads come through in) and up until
// either ends, then closes both.
func pipe(client net.Conn, in *bufio.Reader, up net.Conn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(up, in) // ends when either side closes
		_ = up.Close()
		_ = client.Close()
	}()
	_, _ = io.Copy(client, up)
	_ = up.Close()
	_ = client.Close()
	<-done
}

// hopHeaders are not forwarded (RFC 9110, 7.6.1), with the proxy's own.
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authorization",
	"Proxy-Authenticate", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// forward sends an absolute-URI request on to its server and streams the
// answer back.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request) {
	p.target(r.URL.Host)
	p.stats.add(func(s *Stats) { s.Forwarded++ })
	out := r.Clone(r.Context())
	out.RequestURI = ""
	for _, h := range hopHeaders {
		out.Header.Del(h)
	}
	resp, err := p.forwarder.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	for _, h := range hopHeaders {
		w.Header().Del(h)
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body) // a killed client ends it
}

// resolver is the SOCKS5 server's: names given with Host, and localhost.
type resolver struct{ p *Proxy }

func (r resolver) Resolve(ctx context.Context, name string) (context.Context, net.IP, error) {
	a, err := r.p.resolve(name)
	if err != nil {
		return ctx, nil, err
	}
	return ctx, net.IP(a.AsSlice()), nil
}

// rule records every SOCKS5 request's target as the client named it.
type rule struct{ p *Proxy }

func (r rule) Allow(ctx context.Context, req *socks5.Request) (context.Context, bool) {
	host := req.RawDestAddr.FQDN
	if host == "" {
		host = req.RawDestAddr.IP.String()
	}
	r.p.target(net.JoinHostPort(host, fmt.Sprint(req.RawDestAddr.Port)))
	return ctx, true
}

// credentials is the SOCKS5 server's check of user name and password.
type credentials struct{ p *Proxy }

func (c credentials) Valid(user, password, _ string) bool {
	ok := user == c.p.cfg.user && password == c.p.cfg.password
	if !ok {
		c.p.stats.add(func(s *Stats) { s.Refused++ })
	}
	return ok
}

// listener accepts client connections, counts them and their bytes, and
// can close them all, stop listening and listen again on its address.
type listener struct {
	addr  net.Addr
	stats *stats

	mu     sync.Mutex
	inner  net.Listener  // nil while stopped
	wake   chan struct{} // closed when inner is replaced or the listener closed
	closed bool
	conns  map[*conn]struct{}
}

func newListener(inner net.Listener, s *stats) *listener {
	return &listener{addr: inner.Addr(), stats: s, inner: inner, wake: make(chan struct{}), conns: map[*conn]struct{}{}}
}

func (l *listener) Addr() net.Addr { return l.addr }

func (l *listener) Accept() (net.Conn, error) {
	for {
		l.mu.Lock()
		inner, wake, closed := l.inner, l.wake, l.closed
		l.mu.Unlock()
		switch {
		case closed:
			return nil, net.ErrClosed
		case inner == nil:
			<-wake
			continue
		}
		c, err := inner.Accept()
		l.mu.Lock()
		current := l.inner == inner && !l.closed
		if err == nil && current {
			wc := &conn{Conn: c, l: l}
			l.conns[wc] = struct{}{}
			l.mu.Unlock()
			l.stats.add(func(s *Stats) { s.Conns++ })
			return wc, nil
		}
		l.mu.Unlock()
		if err == nil {
			_ = c.Close() // accepted just as the listener stopped
			continue
		}
		if !current {
			continue
		}
		return nil, err
	}
}

func (l *listener) killConns() {
	l.mu.Lock()
	conns := l.conns
	l.conns = map[*conn]struct{}{}
	l.mu.Unlock()
	for c := range conns {
		_ = c.Conn.Close() // a test proxy's socket: nothing to report
	}
}

func (l *listener) stop() {
	l.mu.Lock()
	if l.inner != nil {
		_ = l.inner.Close()
		l.inner = nil
	}
	l.mu.Unlock()
	l.killConns()
}

func (l *listener) start() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.inner != nil {
		return errors.New("testproxy: not stopped")
	}
	inner, err := net.Listen("tcp", l.addr.String())
	if err != nil {
		return err
	}
	l.inner = inner
	close(l.wake)
	l.wake = make(chan struct{})
	return nil
}

func (l *listener) Close() error {
	l.mu.Lock()
	var err error
	if !l.closed {
		l.closed = true
		if l.inner != nil {
			err = l.inner.Close()
			l.inner = nil
		}
		close(l.wake)
	}
	l.mu.Unlock()
	l.killConns()
	return err
}

// conn is a client connection: it counts what it writes and leaves the
// listener's set when closed.
type conn struct {
	net.Conn
	l *listener
}

// Write counts b before it writes it, so that a client that has read the
// bytes finds them counted, and takes back what it could not write.
func (c *conn) Write(b []byte) (int, error) {
	c.l.stats.add(func(s *Stats) { s.Bytes += int64(len(b)) })
	n, err := c.Conn.Write(b)
	if n < len(b) {
		c.l.stats.add(func(s *Stats) { s.Bytes -= int64(len(b) - n) })
	}
	return n, err
}

// CloseWrite half-closes, as the SOCKS5 server does when a target is done.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *conn) Close() error {
	c.l.mu.Lock()
	delete(c.l.conns, c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}
