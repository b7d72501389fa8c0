package nginxtest

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Two sites serve their own folders on their own ports: a ranged GET gets
// the bytes of the right file, and each site's log records its requests,
// with the Range and the bytes sent. Stopped, nginx is gone.
func TestStartServesAndLogs(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(a, "f.bin"), []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b, "f.bin"), []byte("abcdefghij"), 0o644); err != nil {
		t.Fatal(err)
	}
	n := Start(t, Site{Root: a}, Site{Root: b, Rate: 1 << 20})
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	get := func(url, rng string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Header.Get("ETag") == "" || resp.Header.Get("Last-Modified") == "" {
			t.Errorf("%s: no validators in %v", url, resp.Header)
		}
		return resp.StatusCode, string(body)
	}
	if code, body := get(n.URL(0)+"/f.bin", "bytes=2-4"); code != http.StatusPartialContent || body != "234" {
		t.Errorf("site 0: %d %q, want 206 \"234\"", code, body)
	}
	if code, body := get(n.URL(1)+"/f.bin", ""); code != http.StatusOK || body != "abcdefghij" {
		t.Errorf("site 1: %d %q, want 200 \"abcdefghij\"", code, body)
	}
	client.CloseIdleConnections()

	want := Request{Method: "GET", URI: "/f.bin", Range: "bytes=2-4", Status: 206, Body: 3, Complete: true}
	got := n.Requests(0)
	if len(got) != 1 || got[0].Sent <= got[0].Body {
		t.Fatalf("site 0 logged %+v, want one request", got)
	}
	got[0].Sent = 0
	if got[0] != want {
		t.Errorf("site 0 logged %+v, want %+v", got[0], want)
	}
	if s, e, ok := got[0].Bounds(); !ok || s != 2 || e != 5 {
		t.Errorf("bounds %d %d %v, want [2, 5)", s, e, ok)
	}
	if got := n.Requests(1); len(got) != 1 || got[0].Range != "" || got[0].Body != 10 || got[0].Status != 200 {
		t.Errorf("site 1 logged %+v, want one whole GET", got)
	}

	pid := n.cmd.Process.Pid
	n.Stop()
	n.Stop()
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("nginx (pid %d) is still there after Stop: %v", pid, err)
	}
	// The logs stay readable once stopped.
	if got := n.Requests(0); len(got) != 1 {
		t.Errorf("site 0 logged %d requests after the stop", len(got))
	}
}

// A cleanup stops nginx without the test asking.
func TestCleanupStops(t *testing.T) {
	var pid int
	t.Run("inner", func(t *testing.T) {
		n := Start(t, Site{Root: t.TempDir()})
		pid = n.cmd.Process.Pid
	})
	if pid == 0 {
		t.Skip("nginx did not start")
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("nginx (pid %d) is still there after its test ended: %v", pid, err)
	}
}

// An answer the client cuts short is logged too, once Requests has waited
// for nginx to notice.
func TestRequestsWaitsForCutAnswers(t *testing.T) {
	root := t.TempDir()
	data := bytes.Repeat([]byte("x"), 4<<20)
	if err := os.WriteFile(filepath.Join(root, "big.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	n := Start(t, Site{Root: root, Rate: 1 << 20})
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(n.URL(0) + "/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close() // cut short: the connection is closed
	got := n.Requests(0)
	if len(got) != 1 || got[0].Complete || got[0].Body >= int64(len(data)) {
		t.Fatalf("logged %+v, want one answer cut short", got)
	}
}

// A port taken between its choice and nginx's bind: nginx starts again on
// other ports.
func TestStartRetriesOnATakenPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := l.Addr().(*net.TCPAddr).Port
	calls := 0
	pickPorts = func(k int) ([]int, error) {
		calls++
		ports, err := freePorts(k)
		if calls == 1 && err == nil {
			ports[0] = taken
		}
		return ports, err
	}
	defer func() { pickPorts = freePorts }()
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "f.bin"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	n := Start(t, Site{Root: root})
	if calls != 2 || n.ports[0] == taken {
		t.Fatalf("%d starts, port %d (taken: %d); want a second start on another port", calls, n.ports[0], taken)
	}
	resp, err := http.Get(n.URL(0) + "/f.bin")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status %d", resp.StatusCode)
	}
	http.DefaultClient.CloseIdleConnections()
}
