package testserver

import (
	"net/http/httptest"
	"sync"
	"testing"
)

// Server is a loopback HTTP/1.1 (not TLS) server running a Handler. The
// Handler's methods (Size, Seed, ETag, Content, Verify, Stats, SetOption,
// ...) are available on the Server.
type Server struct {
	*Handler

	// URL is where a client should start: the file, or the first redirect
	// with Redirects or RedirectTo. It is fixed by the options given to New.
	URL string

	ts        *httptest.Server
	closeOnce sync.Once
}

// New starts a Server configured by opts; t.Cleanup closes it.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	h := NewHandler(opts...)
	ts := httptest.NewServer(h)
	s := &Server{Handler: h, URL: ts.URL + h.StartPath(), ts: ts}
	t.Cleanup(s.Close)
	return s
}

// FileURL returns the URL of the file itself, bypassing any redirects.
func (s *Server) FileURL() string {
	return s.ts.URL + s.FilePath()
}

// Close stops the server: stalled and throttled answers abort, all client
// connections (active ones included) are closed, and Close waits for the
// handlers to return. It may be called more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.Handler.Close()
		s.ts.CloseClientConnections()
		s.ts.Close()
	})
}
